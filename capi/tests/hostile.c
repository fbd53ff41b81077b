/* Hostile arguments to every libcomposefs function. Built against our headers and run on
 * C's library and on ours: each line "case rc errno [detail]" must be identical, except for
 * the documented differences, which print "ours-only" cases (where C aborts or crashes) only
 * when run with the argument "ours". Never built with NDEBUG. */
#include "lcfs-writer.h"
#include "lcfs-mount.h"
#include "lcfs-erofs.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define SHOW(name, expr)                                                         \
	do {                                                                     \
		errno = 0;                                                       \
		long long _r = (long long)(expr);                                \
		/* errno means something only on failure (C leaves stale values) */ \
		printf("%-40s rc=%lld errno=%d\n", name, _r, _r < 0 ? errno : 0); \
	} while (0)
#define SHOWV(name, call)                                                        \
	do {                                                                     \
		errno = 0;                                                       \
		call;                                                            \
		printf("%-40s errno=%d\n", name, errno);                         \
	} while (0)
#define SHOWP(name, expr)                                                        \
	do {                                                                     \
		errno = 0;                                                       \
		const void *_p = (const void *)(expr);                           \
		printf("%-40s %s errno=%d\n", name, _p ? "ptr" : "NULL",        \
		       _p ? 0 : errno);                                          \
	} while (0)

static struct lcfs_node_s *mk(uint32_t mode)
{
	struct lcfs_node_s *n = lcfs_node_new();
	lcfs_node_set_mode(n, mode);
	return n;
}

static char buf[1 << 20];
static size_t buf_len;
static int cb_mode;
static ssize_t write_cb(void *file, void *data, size_t count)
{
	(void)file;
	if (cb_mode == 1)
		return 0;
	if (cb_mode == 2) {
		errno = ENOSPC;
		return -1;
	}
	if (cb_mode == 3 && count > 7)
		count = 7; /* short writes */
	if (buf_len + count > sizeof(buf))
		count = sizeof(buf) - buf_len;
	memcpy(buf + buf_len, data, count);
	buf_len += count;
	return count;
}

static ssize_t read_fail(void *file, void *b, size_t count)
{
	(void)file, (void)b, (void)count;
	errno = EIO;
	return -1;
}

static void hex(const char *name, const uint8_t *d)
{
	printf("%-40s ", name);
	for (int i = 0; i < 32; i++)
		printf("%02x", d[i]);
	printf("\n");
}

static int write_tree(struct lcfs_node_s *root, uint32_t version, uint32_t max, uint8_t *digest)
{
	struct lcfs_write_options_s o = { 0 };
	o.format = LCFS_FORMAT_EROFS;
	o.version = version;
	o.max_version = max;
	o.digest_out = digest;
	buf_len = 0;
	cb_mode = 0;
	o.file_write_cb = write_cb;
	return lcfs_write_to(root, &o);
}

static void nodes(void)
{
	struct lcfs_node_s *root = mk(S_IFDIR | 0755);
	struct lcfs_node_s *file = mk(S_IFREG | 0644);
	char name[300];

	struct lcfs_node_s *x = mk(S_IFREG);
	SHOW("add_child to a file", lcfs_node_add_child(file, x, "x"));
	lcfs_node_unref(x);
	struct lcfs_node_s *c = mk(S_IFREG | 0644);
	SHOW("add_child empty name", lcfs_node_add_child(root, c, ""));
	memset(name, 'a', 256);
	name[256] = 0;
	SHOW("add_child 256-byte name", lcfs_node_add_child(root, c, name));
	name[255] = 0;
	SHOW("add_child 255-byte name", lcfs_node_add_child(root, c, name));
	SHOW("add_child named child again", lcfs_node_add_child(root, c, "other"));
	struct lcfs_node_s *d = mk(S_IFREG | 0644);
	SHOW("add_child duplicate name", lcfs_node_add_child(root, d, name));
	lcfs_node_unref(d);
	SHOW("add_child file", lcfs_node_add_child(root, file, "file"));
	SHOW("n_children", lcfs_node_get_n_children(root));
	SHOWP("get_child out of range", lcfs_node_get_child(root, 99));
	SHOWP("lookup_child missing", lcfs_node_lookup_child(root, "nope"));
	SHOWP("lookup_child present", lcfs_node_lookup_child(root, "file"));
	SHOWP("get_parent", lcfs_node_get_parent(file));
	SHOWP("root name", lcfs_node_get_name(root));
	printf("%-40s %s\n", "child name", lcfs_node_get_name(file));
	SHOW("dirp dir", lcfs_node_dirp(root));
	SHOW("dirp file", lcfs_node_dirp(file));

	/* modes */
	SHOW("try_set_mode 0", lcfs_node_try_set_mode(file, 0));
	SHOW("try_set_mode unknown type", lcfs_node_try_set_mode(file, 0170644));
	SHOW("try_set_mode reg", lcfs_node_try_set_mode(file, S_IFREG | 04755));
	SHOW("get_mode", lcfs_node_get_mode(file));
	lcfs_node_set_rdev64(file, 0x123456789abULL);
	SHOW("rdev64 truncated", lcfs_node_get_rdev64(file));
	lcfs_node_set_uid(file, 0xffffffff);
	lcfs_node_set_gid(file, 42);
	lcfs_node_set_nlink(file, 7);
	SHOW("uid", lcfs_node_get_uid(file));
	SHOW("gid", lcfs_node_get_gid(file));
	SHOW("nlink", lcfs_node_get_nlink(file));
	struct timespec ts = { .tv_sec = -5, .tv_nsec = 999999999 }, back;
	lcfs_node_set_mtime(file, &ts);
	lcfs_node_get_mtime(file, &back);
	printf("%-40s %lld %ld\n", "mtime", (long long)back.tv_sec, back.tv_nsec);

	/* xattrs */
	SHOW("set_xattr empty name", lcfs_node_set_xattr(file, "", "v", 1));
	memset(name, 'x', 256);
	name[256] = 0;
	SHOW("set_xattr 256-byte name", lcfs_node_set_xattr(file, name, "v", 1));
	SHOW("set_xattr 65536-byte value", lcfs_node_set_xattr(file, "user.big", buf, 65536));
	SHOW("set_xattr 32000", lcfs_node_set_xattr(file, "user.a", buf, 32000));
	SHOW("set_xattr second 32000", lcfs_node_set_xattr(file, "user.b", buf, 32000));
	SHOW("set_xattr empty value", lcfs_node_set_xattr(file, "user.e", "", 0));
	size_t len = 99;
	SHOWP("get_xattr empty value", lcfs_node_get_xattr(file, "user.e", &len));
	printf("%-40s %zu\n", "get_xattr empty len", len);
	SHOWP("get_xattr missing", lcfs_node_get_xattr(file, "user.none", &len));
	SHOW("unset_xattr missing", lcfs_node_unset_xattr(file, "user.none"));
	SHOW("unset_xattr a", lcfs_node_unset_xattr(file, "user.a"));
	SHOW("set_xattr after unset", lcfs_node_set_xattr(file, "user.b", buf, 32000));
	SHOW("n_xattr", lcfs_node_get_n_xattr(file));
	for (size_t i = 0; i < lcfs_node_get_n_xattr(file); i++)
		printf("%-40s %s\n", "xattr name", lcfs_node_get_xattr_name(file, i));
	SHOWP("get_xattr_name out of range", lcfs_node_get_xattr_name(file, 99));

	/* payload, content */
	memset(buf, 'p', 4096);
	buf[4096] = 0;
	SHOW("set_payload 4096", lcfs_node_set_payload(file, buf));
	buf[4095] = 0;
	SHOW("set_payload 4095", lcfs_node_set_payload(file, buf));
	SHOW("set_payload NULL", lcfs_node_set_payload(file, NULL));
	SHOWP("get_payload after NULL", lcfs_node_get_payload(file));
	SHOW("set_content 5001", lcfs_node_set_content(file, (uint8_t *)buf, 5001));
	SHOW("set_content 5000", lcfs_node_set_content(file, (uint8_t *)buf, 5000));
	SHOW("size after content", lcfs_node_get_size(file));
	lcfs_node_set_size(file, 5000);
	SHOWP("content kept on same size", lcfs_node_get_content(file));
	lcfs_node_set_size(file, 10);
	SHOWP("content dropped on new size", lcfs_node_get_content(file));
	SHOW("set_content NULL 17", lcfs_node_set_content(file, NULL, 17));
	SHOW("size after NULL content", lcfs_node_get_size(file));
	struct lcfs_node_s *l = mk(S_IFLNK | 0777);
	SHOW("symlink payload NULL", lcfs_node_set_symlink_payload(l, NULL));
	SHOW("symlink payload empty", lcfs_node_set_symlink_payload(l, ""));
	SHOW("symlink payload", lcfs_node_set_symlink_payload(l, "target"));
	SHOW("symlink size", lcfs_node_get_size(l));
	SHOW("add symlink", lcfs_node_add_child(root, l, "link"));

	/* digest */
	SHOWP("digest unset", lcfs_node_get_fsverity_digest(file));
	uint8_t dg[32];
	memset(dg, 0xab, 32);
	lcfs_node_set_fsverity_digest(file, dg);
	SHOWP("digest set", lcfs_node_get_fsverity_digest(file));
	SHOW("fsverity_from_content failing", lcfs_node_set_fsverity_from_content(file, NULL, read_fail));

	/* hardlinks */
	struct lcfs_node_s *h = lcfs_node_new();
	uint32_t before = lcfs_node_get_nlink(file);
	lcfs_node_make_hardlink(h, file);
	SHOW("hardlink nlink increment", lcfs_node_get_nlink(file) - before);
	SHOWP("hardlink target", lcfs_node_get_hardlink_target(h));
	SHOW("add hardlink", lcfs_node_add_child(root, h, "hard"));

	/* clones */
	struct lcfs_node_s *cl = lcfs_node_clone(file);
	SHOW("clone n_xattr", lcfs_node_get_n_xattr(cl));
	SHOWP("clone name", lcfs_node_get_name(cl));
	lcfs_node_unref(cl);
	struct lcfs_node_s *deep = lcfs_node_clone_deep(root);
	SHOW("clone_deep n_children", lcfs_node_get_n_children(deep));
	struct lcfs_node_s *dh = lcfs_node_lookup_child(deep, "hard");
	SHOW("clone_deep link remapped",
	     lcfs_node_get_hardlink_target(dh) == lcfs_node_lookup_child(deep, "file"));

	/* writing */
	uint8_t d1[32], d2[32];
	lcfs_node_set_size(file, 100);
	SHOW("write", write_tree(root, 0, 1, d1));
	SHOW("write size", buf_len);
	hex("write digest", d1);
	SHOW("write clone_deep", write_tree(deep, 0, 1, d2));
	SHOW("clone writes same digest", memcmp(d1, d2, 32));
	lcfs_node_unref(deep);

	struct lcfs_write_options_s o = { 0 };
	o.file_write_cb = write_cb;
	o.flags = 1;
	SHOW("write flags 1", lcfs_write_to(root, &o));
	o.flags = 0;
	o.version = 2;
	SHOW("write version 2", lcfs_write_to(root, &o));
	o.version = 0;
	o.max_version = 2;
	SHOW("write max_version 2", lcfs_write_to(root, &o));
	o.max_version = 0;
	o.version = 1;
	o.format = 1;
	SHOW("write format 1", lcfs_write_to(root, &o));
	printf("%-40s %u %u\n", "versions written back", o.version, o.max_version);
	o.format = 0;
	o.version = 0;
	o.max_version = 1;
	for (int i = 0; i < 3; i++)
		o.reserved[i] = 0xdeadbeef;
	for (int i = 0; i < 4; i++)
		o.reserved2[i] = (void *)1;
	buf_len = 0;
	SHOW("write reserved fields set", lcfs_write_to(root, &o));
	struct lcfs_node_s *wo = mk(S_IFCHR | 0644);
	SHOW("add whiteout", lcfs_node_add_child(root, wo, "wh"));
	o.version = 0;
	o.max_version = 1;
	buf_len = 0;
	SHOW("write with whiteout", lcfs_write_to(root, &o));
	printf("%-40s %u %u\n", "whiteout versions written back", o.version, o.max_version);
	cb_mode = 1;
	SHOW("write cb returns 0", lcfs_write_to(root, &o));
	cb_mode = 2;
	SHOW("write cb ENOSPC", lcfs_write_to(root, &o));
	cb_mode = 3;
	buf_len = 0;
	o.digest_out = d1;
	SHOW("write short writes", lcfs_write_to(root, &o));
	uint8_t d3[32];
	lcfs_compute_fsverity_from_data(d3, (uint8_t *)buf, buf_len);
	SHOW("digest_out is the image digest", memcmp(d1, d3, 32));
	o.file_write_cb = NULL;
	memset(d2, 0, 32);
	SHOW("write digest only", lcfs_write_to(root, &o));
	SHOW("digest only equals", memcmp(d1, d2, 32) == 0 || memcmp(d1, o.digest_out, 32) == 0);

	/* a child of the tree as root (ostree writes "root") */
	struct lcfs_node_s *sub = mk(S_IFDIR | 0700);
	lcfs_node_add_child(root, sub, "sub");
	struct lcfs_node_s *out = lcfs_node_new();
	lcfs_node_make_hardlink(out, file);
	SHOW("add link outside subtree", lcfs_node_add_child(sub, out, "out"));
	SHOW("write subtree with outside link", write_tree(sub, 0, 1, NULL));

	/* mode 0 and unknown types */
	struct lcfs_node_s *r2 = mk(S_IFDIR | 0755);
	SHOW("add mode-0 child", lcfs_node_add_child(r2, lcfs_node_new(), "zero"));
	SHOW("write mode-0 child", write_tree(r2, 0, 1, NULL));
	lcfs_node_set_mode(lcfs_node_lookup_child(r2, "zero"), 0170000);
	SHOW("write unknown type", write_tree(r2, 0, 1, NULL));
	lcfs_node_set_mode(lcfs_node_lookup_child(r2, "zero"), S_IFREG | 0644);
	x = mk(S_IFREG);
	SHOW("add_child under a file", lcfs_node_add_child(lcfs_node_lookup_child(r2, "zero"), x, "x"));
	lcfs_node_unref(x);
	lcfs_node_set_size(lcfs_node_lookup_child(r2, "zero"), 1ULL << 60);
	SHOW("write too large file", write_tree(r2, 0, 1, NULL));
	lcfs_node_unref(r2);

	/* a hardlink cycle fails the write with ELOOP */
	struct lcfs_node_s *r4 = mk(S_IFDIR | 0755), *a = lcfs_node_new(), *b = lcfs_node_new();
	lcfs_node_make_hardlink(a, b);
	lcfs_node_make_hardlink(b, a);
	lcfs_node_add_child(r4, a, "a");
	lcfs_node_add_child(r4, b, "b");
	SHOW("write with hardlink cycle", write_tree(r4, 0, 1, NULL));
	lcfs_node_unref(r4); /* C: the cycle keeps a and b alive (leaked) */
	/* a hardlink to a directory is written */
	struct lcfs_node_s *r5 = mk(S_IFDIR | 0755), *d5 = mk(S_IFDIR | 0755), *l5 = lcfs_node_new();
	lcfs_node_add_child(r5, d5, "d");
	lcfs_node_make_hardlink(l5, d5);
	lcfs_node_add_child(r5, l5, "l");
	SHOW("write hardlink to a directory", write_tree(r5, 0, 1, NULL));
	lcfs_node_unref(r5);
	/* a non-directory root */
	struct lcfs_node_s *f6 = mk(S_IFREG | 0644);
	SHOW("write file as root", write_tree(f6, 0, 1, NULL));
	lcfs_node_unref(f6);

	lcfs_node_unref(root);
}

static void loading(void)
{
	uint8_t img[8192] = { 0 };
	SHOWP("load NULL", lcfs_load_node_from_image(NULL, 0));
	SHOWP("load zeros", lcfs_load_node_from_image(img, sizeof(img)));
	SHOWP("load short", lcfs_load_node_from_image(img, 100));

	struct lcfs_node_s *root = mk(S_IFDIR | 0755);
	const char *names[] = { "a", "b", "c" };
	for (int i = 0; i < 3; i++) {
		struct lcfs_node_s *f = mk(S_IFREG | 0644);
		lcfs_node_set_content(f, (const uint8_t *)"xy", 2);
		lcfs_node_add_child(root, f, names[i]);
	}
	SHOW("write for load", write_tree(root, 0, 1, NULL));
	lcfs_node_unref(root);
	struct lcfs_node_s *n = lcfs_load_node_from_image((uint8_t *)buf, buf_len);
	SHOWP("load image", n);
	SHOW("loaded children", lcfs_node_get_n_children(n));
	lcfs_node_unref(n);
	const char *top[] = { "b", "zz", NULL };
	struct lcfs_read_options_s ro = { .toplevel_entries = top };
	n = lcfs_load_node_from_image_ext((uint8_t *)buf, buf_len, &ro);
	SHOW("toplevel filter children", lcfs_node_get_n_children(n));
	printf("%-40s %s\n", "toplevel filter child", lcfs_node_get_name(lcfs_node_get_child(n, 0)));
	lcfs_node_unref(n);

	memcpy(img, buf, sizeof(img));
	((struct lcfs_erofs_header_s *)img)->version = 2;
	SHOWP("load header version 2", lcfs_load_node_from_image(img, sizeof(img)));
	memcpy(img, buf, sizeof(img));
	img[1024] ^= 0xff;
	SHOWP("load bad erofs magic", lcfs_load_node_from_image(img, sizeof(img)));

	char path[] = "/tmp/hostile-lcfs.XXXXXX";
	int fd = mkstemp(path);
	write(fd, buf, buf_len);
	SHOW("version_from_fd", lcfs_version_from_fd(fd));
	n = lcfs_load_node_from_fd(fd);
	SHOWP("load_node_from_fd", n);
	lcfs_node_unref(n);
	SHOW("version_from_fd bad fd", lcfs_version_from_fd(-1));
	SHOWP("load_node_from_fd bad fd", lcfs_load_node_from_fd(-1));
	int fd2 = open("/dev/null", O_RDONLY);
	SHOW("version_from_fd empty", lcfs_version_from_fd(fd2));
	close(fd2);

	uint8_t dg[32];
	SHOW("measure_fsverity plain file", lcfs_fd_measure_fsverity(dg, fd));
	SHOW("get_fsverity plain file", lcfs_fd_get_fsverity(dg, fd));
	uint8_t dg2[32];
	lcfs_compute_fsverity_from_data(dg2, (uint8_t *)buf, buf_len);
	SHOW("get_fsverity computes", memcmp(dg, dg2, 32));
	SHOW("measure_fsverity bad fd", lcfs_fd_measure_fsverity(dg, -1));
	SHOW("enable_fsverity bad fd", lcfs_fd_enable_fsverity(-1));
	lseek(fd, 0, SEEK_SET);
	SHOW("compute_from_fd", lcfs_compute_fsverity_from_fd(dg, fd));
	SHOW("compute_from_fd digest", memcmp(dg, dg2, 32));
	SHOW("compute_from_content failing", lcfs_compute_fsverity_from_content(dg, NULL, read_fail));
	lcfs_compute_fsverity_from_data(dg, (uint8_t *)"hello\n", 6);
	hex("fsverity hello", dg);
	close(fd);
	unlink(path);

	/* files */
	SHOWP("load_node_from_file unknown flag", lcfs_load_node_from_file(AT_FDCWD, "/", 128));
	SHOWP("load_node_from_file skip+user", lcfs_load_node_from_file(AT_FDCWD, "/", LCFS_BUILD_SKIP_XATTRS | LCFS_BUILD_USER_XATTRS));
	SHOWP("load_node_from_file missing", lcfs_load_node_from_file(AT_FDCWD, "/nonexistent-x", 0));
	char *failed = NULL;
	SHOWP("build missing", lcfs_build(AT_FDCWD, "/nonexistent-x", 0, &failed));
	printf("%-40s %s\n", "build failed path", failed ? failed : "(null)");
	free(failed);
	n = lcfs_load_node_from_file(AT_FDCWD, "/etc/hostname", LCFS_BUILD_COMPUTE_DIGEST | LCFS_BUILD_BY_DIGEST);
	SHOWP("load_node_from_file by digest", n);
	printf("%-40s %s\n", "by-digest payload", lcfs_node_get_payload(n) ? lcfs_node_get_payload(n) : "(inline)");
	lcfs_node_unref(n);
	SHOW("set_from_content NULL node", lcfs_node_set_from_content(NULL, AT_FDCWD, "/etc/hostname", 0));
}

static void mounting(void)
{
	const char *objdirs[] = { "/nonexistent-objects" };
	struct lcfs_mount_options_s m = { 0 };
	m.objdirs = objdirs;
	m.n_objdirs = 1;
	m.flags = 1 << 6;
	SHOW("mount unknown flag", lcfs_mount_image("/nonexistent.cfs", "/mnt", &m));
	m.flags = 4;
	SHOW("mount flag 4", lcfs_mount_image("/nonexistent.cfs", "/mnt", &m));
	m.flags = 0;
	m.n_objdirs = 0;
	SHOW("mount no objdirs", lcfs_mount_image("/nonexistent.cfs", "/mnt", &m));
	m.n_objdirs = 1;
	m.upperdir = "/tmp";
	SHOW("mount upperdir without workdir", lcfs_mount_image("/nonexistent.cfs", "/mnt", &m));
	m.upperdir = NULL;
	m.expected_fsverity_digest = "zz";
	SHOW("mount bad digest", lcfs_mount_image("/nonexistent.cfs", "/mnt", &m));
	m.expected_fsverity_digest = "abc";
	SHOW("mount odd digest", lcfs_mount_image("/nonexistent.cfs", "/mnt", &m));
	m.expected_fsverity_digest = NULL;
	m.flags = LCFS_MOUNT_FLAGS_IDMAP;
	m.idmap_fd = -1;
	SHOW("mount idmap without fd", lcfs_mount_image("/nonexistent.cfs", "/mnt", &m));
	m.flags = 0;
	SHOW("mount missing image", lcfs_mount_image("/nonexistent.cfs", "/mnt", &m));
	SHOW("mount_fd bad fd", lcfs_mount_fd(-1, "/mnt", &m));
}

/* What C answers with an abort or a crash; ours returns errors. */
static void ours_only(void)
{
	struct lcfs_node_s *n = mk(S_IFREG | 0644);
	SHOW("symlink payload on a file", lcfs_node_set_symlink_payload(n, "x"));
	SHOWV("make_hardlink to itself", lcfs_node_make_hardlink(n, n));
	struct lcfs_node_s *root = mk(S_IFDIR | 0755);
	SHOW("add_child root under itself", lcfs_node_add_child(root, root, "me"));
	struct lcfs_node_s *l = mk(S_IFLNK | 0777);
	lcfs_node_add_child(root, l, "l");
	SHOW("write symlink without target", write_tree(root, 0, 1, NULL));
	SHOW("add_child NULL", lcfs_node_add_child(root, NULL, "x"));
	SHOW("get_mode NULL", lcfs_node_get_mode(NULL));
	SHOWP("load_ext NULL opts", lcfs_load_node_from_image_ext((uint8_t *)"", 0, NULL));
	SHOW("write NULL opts", lcfs_write_to(root, NULL));
	/* a hardlink cycle: C records it (leaking both nodes); ours refuses the closing link */
	struct lcfs_node_s *a = lcfs_node_new(), *b = lcfs_node_new();
	lcfs_node_make_hardlink(a, b);
	SHOWV("make_hardlink closing a cycle", lcfs_node_make_hardlink(b, a));
	/* "." as a name: C accepts it and writes an image with two "." entries */
	struct lcfs_node_s *r3 = mk(S_IFDIR | 0755);
	SHOW("add_child .", lcfs_node_add_child(r3, mk(S_IFREG | 0644), "."));
	SHOW("write . entry", write_tree(r3, 0, 1, NULL));
	lcfs_node_unref(r3);
	lcfs_node_unref(a);
	lcfs_node_unref(b);
	/* a deep tree: freed without recursion */
	struct lcfs_node_s *cur = root;
	for (int i = 0; i < 100000; i++) {
		struct lcfs_node_s *d = mk(S_IFDIR | 0755);
		lcfs_node_add_child(cur, d, "d");
		cur = d;
	}
	SHOW("deep tree built", 0);
	lcfs_node_unref(n);
	lcfs_node_unref(root);
	/* emptiness: the kernel's empty-file digest (C 1.0.8 hashes a zero block) */
	uint8_t dg[32];
	lcfs_compute_fsverity_from_data(dg, NULL, 0);
	hex("fsverity empty", dg);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	nodes();
	loading();
	mounting();
	if (argc > 1 && strcmp(argv[1], "ours") == 0)
		ours_only();
	return 0;
}
