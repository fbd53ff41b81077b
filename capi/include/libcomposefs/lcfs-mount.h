/* libcomposefs (mkcfs-rs): mounting composefs images (EROFS + overlayfs).
 * ABI-compatible with composefs 1.0.8's libcomposefs.so.1. Mounting needs CAP_SYS_ADMIN.
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */
#ifndef MKCFS_RS_LCFS_MOUNT_H
#define MKCFS_RS_LCFS_MOUNT_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#ifndef LCFS_EXTERN
#define LCFS_EXTERN extern
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* errno values of lcfs_mount_*: no fs-verity on the image, a different digest, no signature. */
#define ENOVERITY ENOTTY
#define EWRONGVERITY EILSEQ
#define ENOSIGNATURE EBADMSG

enum lcfs_mount_flags_t {
	LCFS_MOUNT_FLAGS_NONE = 0,
	LCFS_MOUNT_FLAGS_REQUIRE_VERITY = 1,
	LCFS_MOUNT_FLAGS_READONLY = 2,
	LCFS_MOUNT_FLAGS_IDMAP = 8,
	LCFS_MOUNT_FLAGS_TRY_VERITY = 16,
	LCFS_MOUNT_FLAGS_MASK = 31,
};

struct lcfs_mount_options_s {
	const char **objdirs; /* object stores, at least one */
	size_t n_objdirs;
	const char *workdir; /* overlay upper and work dirs: both or neither */
	const char *upperdir;
	const char *expected_fsverity_digest; /* NULL, or the image's digest in hex */
	uint32_t flags; /* enum lcfs_mount_flags_t */
	int idmap_fd; /* user namespace fd, with LCFS_MOUNT_FLAGS_IDMAP */
	const char *image_mountdir; /* NULL: a private temporary directory */
	uint32_t reserved[4];
	void *reserved2[4];
};

/* 0, or -1 with errno. */
LCFS_EXTERN int lcfs_mount_image(const char *path, const char *mountpoint,
				 struct lcfs_mount_options_s *options);
LCFS_EXTERN int lcfs_mount_fd(int fd, const char *mountpoint,
			      struct lcfs_mount_options_s *options);

#ifdef __cplusplus
}
#endif

#endif /* MKCFS_RS_LCFS_MOUNT_H */
