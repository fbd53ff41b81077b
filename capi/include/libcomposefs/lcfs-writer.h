/* libcomposefs (mkcfs-rs): building, writing and loading composefs images.
 *
 * ABI-compatible with composefs 1.0.8's libcomposefs.so.1. A struct lcfs_node_s is an
 * opaque, refcounted inode of a tree under construction; see README.md (libcomposefs) for
 * where this implementation returns an error where C 1.0.8 aborts, and the C bugs it fixes.
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */
#ifndef MKCFS_RS_LCFS_WRITER_H
#define MKCFS_RS_LCFS_WRITER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#ifndef LCFS_EXTERN
#define LCFS_EXTERN extern
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Size of a sha256 fs-verity digest. */
#define LCFS_DIGEST_SIZE 32

/* Flags of lcfs_build(), lcfs_load_node_from_file() and lcfs_node_set_from_content(). */
enum {
	LCFS_BUILD_SKIP_XATTRS = 1,
	LCFS_BUILD_USE_EPOCH = 2,
	LCFS_BUILD_SKIP_DEVICES = 4,
	LCFS_BUILD_COMPUTE_DIGEST = 8, /* record each file's fs-verity digest */
	LCFS_BUILD_NO_INLINE = 16, /* never store small files in the image */
	LCFS_BUILD_USER_XATTRS = 32, /* read user.* xattrs only */
	LCFS_BUILD_BY_DIGEST = 64, /* payload = object path of the digest */
};

enum lcfs_format_t {
	LCFS_FORMAT_EROFS = 0,
};

enum lcfs_flags_t {
	LCFS_FLAGS_NONE = 0,
	LCFS_FLAGS_MASK = 0,
};

/* Image format versions (composefs_version of the header). */
#define LCFS_VERSION_MAX 1
#define LCFS_DEFAULT_VERSION_MIN 0
#define LCFS_DEFAULT_VERSION_MAX 1

/* Per-xattr metadata size, the per-inode xattr budget, and inline content limits. */
#define LCFS_INODE_XATTRMETA_SIZE 4
#define LCFS_INODE_EXTERNAL_XATTR_MAX (UINT16_MAX / 2)
#define LCFS_INLINE_CONTENT_MAX 5000
#define LCFS_RECOMMENDED_INLINE_CONTENT_MAX 64

typedef ssize_t (*lcfs_read_cb)(void *file, void *buf, size_t count);
typedef ssize_t (*lcfs_write_cb)(void *file, void *buf, size_t count);

struct lcfs_write_options_s {
	uint32_t format; /* enum lcfs_format_t */
	uint32_t version; /* in: minimum version; out: the version written */
	uint32_t flags; /* enum lcfs_flags_t; must be 0 */
	uint8_t *digest_out; /* NULL, or LCFS_DIGEST_SIZE bytes for the image's digest */
	void *file; /* passed to file_write_cb */
	lcfs_write_cb file_write_cb; /* NULL: compute the digest only */
	uint32_t max_version;
	uint32_t reserved[3];
	void *reserved2[4];
};

struct lcfs_read_options_s {
	/* NULL, or a NULL-terminated list of names: load only these children of the root. */
	const char *const *toplevel_entries;
	uint32_t reserved[3];
	void *reserved2[4];
};

struct lcfs_node_s;

/* Lifetime. */
LCFS_EXTERN struct lcfs_node_s *lcfs_node_new(void);
LCFS_EXTERN struct lcfs_node_s *lcfs_node_ref(struct lcfs_node_s *node);
LCFS_EXTERN void lcfs_node_unref(struct lcfs_node_s *node);
LCFS_EXTERN struct lcfs_node_s *lcfs_node_clone(struct lcfs_node_s *node);
LCFS_EXTERN struct lcfs_node_s *lcfs_node_clone_deep(struct lcfs_node_s *node);

/* Loading from files and images. */
LCFS_EXTERN struct lcfs_node_s *lcfs_load_node_from_file(int dirfd, const char *fname,
							 int buildflags);
LCFS_EXTERN struct lcfs_node_s *lcfs_load_node_from_image(const uint8_t *image_data,
							  size_t image_data_size);
LCFS_EXTERN struct lcfs_node_s *
lcfs_load_node_from_image_ext(const uint8_t *image_data, size_t image_data_size,
			      const struct lcfs_read_options_s *opts);
LCFS_EXTERN struct lcfs_node_s *lcfs_load_node_from_fd(int fd);
LCFS_EXTERN struct lcfs_node_s *
lcfs_load_node_from_fd_ext(int fd, const struct lcfs_read_options_s *opts);
LCFS_EXTERN int lcfs_version_from_fd(int fd);

/* Extended attributes; values are not NUL-terminated. */
LCFS_EXTERN const char *lcfs_node_get_xattr(struct lcfs_node_s *node, const char *name,
					    size_t *length);
LCFS_EXTERN int lcfs_node_set_xattr(struct lcfs_node_s *node, const char *name,
				    const char *value, size_t value_len);
LCFS_EXTERN int lcfs_node_unset_xattr(struct lcfs_node_s *node, const char *name);
LCFS_EXTERN size_t lcfs_node_get_n_xattr(struct lcfs_node_s *node);
LCFS_EXTERN const char *lcfs_node_get_xattr_name(struct lcfs_node_s *node, size_t index);

/* Payload (backing path or symlink target), inline content. */
LCFS_EXTERN int lcfs_node_set_payload(struct lcfs_node_s *node, const char *payload);
LCFS_EXTERN int lcfs_node_set_symlink_payload(struct lcfs_node_s *node, const char *payload);
LCFS_EXTERN const char *lcfs_node_get_payload(struct lcfs_node_s *node);
LCFS_EXTERN int lcfs_node_set_content(struct lcfs_node_s *node, const uint8_t *data,
				      size_t data_size);
LCFS_EXTERN const uint8_t *lcfs_node_get_content(struct lcfs_node_s *node);

/* Tree structure. add_child takes over the caller's reference to child on success. */
LCFS_EXTERN struct lcfs_node_s *lcfs_node_lookup_child(struct lcfs_node_s *node,
						       const char *name);
LCFS_EXTERN struct lcfs_node_s *lcfs_node_get_parent(struct lcfs_node_s *node);
LCFS_EXTERN int lcfs_node_add_child(struct lcfs_node_s *parent, struct lcfs_node_s *child,
				    const char *name);
LCFS_EXTERN const char *lcfs_node_get_name(struct lcfs_node_s *node);
LCFS_EXTERN size_t lcfs_node_get_n_children(struct lcfs_node_s *node);
LCFS_EXTERN struct lcfs_node_s *lcfs_node_get_child(struct lcfs_node_s *node, size_t i);
LCFS_EXTERN void lcfs_node_make_hardlink(struct lcfs_node_s *node, struct lcfs_node_s *target);
LCFS_EXTERN struct lcfs_node_s *lcfs_node_get_hardlink_target(struct lcfs_node_s *node);
LCFS_EXTERN bool lcfs_node_dirp(struct lcfs_node_s *node);

/* Inode attributes. */
LCFS_EXTERN uint32_t lcfs_node_get_mode(struct lcfs_node_s *node);
LCFS_EXTERN void lcfs_node_set_mode(struct lcfs_node_s *node, uint32_t mode);
LCFS_EXTERN int lcfs_node_try_set_mode(struct lcfs_node_s *node, uint32_t mode);
LCFS_EXTERN uint32_t lcfs_node_get_uid(struct lcfs_node_s *node);
LCFS_EXTERN void lcfs_node_set_uid(struct lcfs_node_s *node, uint32_t uid);
LCFS_EXTERN uint32_t lcfs_node_get_gid(struct lcfs_node_s *node);
LCFS_EXTERN void lcfs_node_set_gid(struct lcfs_node_s *node, uint32_t gid);
/* The device number is kept in 32 bits. */
LCFS_EXTERN uint32_t lcfs_node_get_rdev(struct lcfs_node_s *node) __attribute__((deprecated));
LCFS_EXTERN uint64_t lcfs_node_get_rdev64(struct lcfs_node_s *node);
LCFS_EXTERN void lcfs_node_set_rdev(struct lcfs_node_s *node, uint32_t rdev)
	__attribute__((deprecated));
LCFS_EXTERN void lcfs_node_set_rdev64(struct lcfs_node_s *node, uint64_t rdev);
LCFS_EXTERN uint32_t lcfs_node_get_nlink(struct lcfs_node_s *node);
LCFS_EXTERN void lcfs_node_set_nlink(struct lcfs_node_s *node, uint32_t nlink);
LCFS_EXTERN uint64_t lcfs_node_get_size(struct lcfs_node_s *node);
LCFS_EXTERN void lcfs_node_set_size(struct lcfs_node_s *node, uint64_t size);
LCFS_EXTERN void lcfs_node_set_mtime(struct lcfs_node_s *node, struct timespec *time);
LCFS_EXTERN void lcfs_node_get_mtime(struct lcfs_node_s *node, struct timespec *time);

/* fs-verity digests of file content. */
LCFS_EXTERN const uint8_t *lcfs_node_get_fsverity_digest(struct lcfs_node_s *node);
LCFS_EXTERN void lcfs_node_set_fsverity_digest(struct lcfs_node_s *node,
					       uint8_t digest[LCFS_DIGEST_SIZE]);
LCFS_EXTERN int lcfs_node_set_fsverity_from_content(struct lcfs_node_s *node, void *file,
						    lcfs_read_cb read_cb);
LCFS_EXTERN int lcfs_node_set_fsverity_from_fd(struct lcfs_node_s *node, int fd);

/* A node tree from a directory; on failure *failed_path_out is malloc'd (free it). */
LCFS_EXTERN struct lcfs_node_s *lcfs_build(int dirfd, const char *fname, int buildflags,
					   char **failed_path_out);

/* Serialise the tree under root as an image. 0, or -1 with errno. */
LCFS_EXTERN int lcfs_write_to(struct lcfs_node_s *root, struct lcfs_write_options_s *options);

/* Userspace fs-verity (sha256, 4096-byte blocks, no salt): 0, or -1 with errno. */
LCFS_EXTERN int lcfs_compute_fsverity_from_content(uint8_t *digest, void *file,
						   lcfs_read_cb read_cb);
LCFS_EXTERN int lcfs_compute_fsverity_from_fd(uint8_t *digest, int fd);
LCFS_EXTERN int lcfs_compute_fsverity_from_data(uint8_t *digest, uint8_t *data,
						size_t data_len);

/* Kernel fs-verity: these three return 0 or a negative errno. */
LCFS_EXTERN int lcfs_fd_measure_fsverity(uint8_t *digest, int fd);
LCFS_EXTERN int lcfs_fd_get_fsverity(uint8_t *digest, int fd);

LCFS_EXTERN int lcfs_node_set_from_content(struct lcfs_node_s *node, int dirfd,
					   const char *fname, int buildflags);
LCFS_EXTERN int lcfs_fd_enable_fsverity(int fd);

#ifdef __cplusplus
}
#endif

#endif /* MKCFS_RS_LCFS_WRITER_H */
