/* Sizes, offsets and constants of the public headers, printed one per line: built once
 * against our headers and once against C composefs 1.0.8's, the outputs must be equal. */
#include "lcfs-writer.h"
#include "lcfs-mount.h"
#include "lcfs-erofs.h"
#include <errno.h>
#include <stddef.h>
#include <stdio.h>

#define SZ(t) printf("sizeof(%s) %zu align %zu\n", #t, sizeof(t), _Alignof(t))
#define OFF(t, f) printf("offsetof(%s, %s) %zu size %zu\n", #t, #f, offsetof(t, f), sizeof(((t *)0)->f))
#define VAL(v) printf("%s %lld\n", #v, (long long)(v))

int main(void)
{
	SZ(struct lcfs_write_options_s);
	OFF(struct lcfs_write_options_s, format);
	OFF(struct lcfs_write_options_s, version);
	OFF(struct lcfs_write_options_s, flags);
	OFF(struct lcfs_write_options_s, digest_out);
	OFF(struct lcfs_write_options_s, file);
	OFF(struct lcfs_write_options_s, file_write_cb);
	OFF(struct lcfs_write_options_s, max_version);
	OFF(struct lcfs_write_options_s, reserved);
	OFF(struct lcfs_write_options_s, reserved2);
	SZ(struct lcfs_read_options_s);
	OFF(struct lcfs_read_options_s, toplevel_entries);
	OFF(struct lcfs_read_options_s, reserved);
	OFF(struct lcfs_read_options_s, reserved2);
	SZ(struct lcfs_mount_options_s);
	OFF(struct lcfs_mount_options_s, objdirs);
	OFF(struct lcfs_mount_options_s, n_objdirs);
	OFF(struct lcfs_mount_options_s, workdir);
	OFF(struct lcfs_mount_options_s, upperdir);
	OFF(struct lcfs_mount_options_s, expected_fsverity_digest);
	OFF(struct lcfs_mount_options_s, flags);
	OFF(struct lcfs_mount_options_s, idmap_fd);
	OFF(struct lcfs_mount_options_s, image_mountdir);
	OFF(struct lcfs_mount_options_s, reserved);
	OFF(struct lcfs_mount_options_s, reserved2);
	SZ(struct lcfs_erofs_header_s);
	OFF(struct lcfs_erofs_header_s, magic);
	OFF(struct lcfs_erofs_header_s, version);
	OFF(struct lcfs_erofs_header_s, flags);
	OFF(struct lcfs_erofs_header_s, composefs_version);
	OFF(struct lcfs_erofs_header_s, unused);
	VAL(LCFS_DIGEST_SIZE);
	VAL(LCFS_BUILD_SKIP_XATTRS);
	VAL(LCFS_BUILD_USE_EPOCH);
	VAL(LCFS_BUILD_SKIP_DEVICES);
	VAL(LCFS_BUILD_COMPUTE_DIGEST);
	VAL(LCFS_BUILD_NO_INLINE);
	VAL(LCFS_BUILD_USER_XATTRS);
	VAL(LCFS_BUILD_BY_DIGEST);
	VAL(LCFS_FORMAT_EROFS);
	VAL(LCFS_FLAGS_NONE);
	VAL(LCFS_FLAGS_MASK);
	VAL(LCFS_VERSION_MAX);
	VAL(LCFS_DEFAULT_VERSION_MIN);
	VAL(LCFS_DEFAULT_VERSION_MAX);
	VAL(LCFS_INODE_XATTRMETA_SIZE);
	VAL(LCFS_INODE_EXTERNAL_XATTR_MAX);
	VAL(LCFS_INLINE_CONTENT_MAX);
	VAL(LCFS_RECOMMENDED_INLINE_CONTENT_MAX);
	VAL(ENOVERITY);
	VAL(EWRONGVERITY);
	VAL(ENOSIGNATURE);
	VAL(LCFS_MOUNT_FLAGS_NONE);
	VAL(LCFS_MOUNT_FLAGS_REQUIRE_VERITY);
	VAL(LCFS_MOUNT_FLAGS_READONLY);
	VAL(LCFS_MOUNT_FLAGS_IDMAP);
	VAL(LCFS_MOUNT_FLAGS_TRY_VERITY);
	VAL(LCFS_MOUNT_FLAGS_MASK);
	VAL(LCFS_EROFS_VERSION);
	VAL(LCFS_EROFS_MAGIC);
	VAL(LCFS_EROFS_FLAGS_HAS_ACL);
	return 0;
}
