//! fs-verity digests (4096-byte blocks, sha256 and sha512, no salt), as the kernel computes them.
