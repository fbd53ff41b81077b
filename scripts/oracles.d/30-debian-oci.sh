# A real OCI image for the repository tests and the import benchmark: a minimal Debian 12
# rootfs made by mmdebstrap, packed into an OCI image layout by umoci (both Debian packages,
# installed on the host as tools). Kept in .oracles/debian-oci (about 90 MB), built once.
do_stamp="$dest/.debian-oci-v1"
if ! [ -f "$do_stamp" ]; then
  if ! command -v umoci >/dev/null || ! command -v mmdebstrap >/dev/null; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      umoci mmdebstrap >/dev/null
  fi
  echo "install-oracles: building a Debian 12 OCI image with mmdebstrap and umoci" >&2
  do_work=$(mktemp -d)
  mmdebstrap --quiet --variant=minbase --mode=root bookworm "$do_work/rootfs.tar" \
    http://deb.debian.org/debian >&2
  rm -rf "$dest/debian-oci"
  umoci init --layout "$dest/debian-oci"
  umoci new --image "$dest/debian-oci:debian"
  umoci unpack --rootless --image "$dest/debian-oci:debian" "$do_work/bundle" >/dev/null 2>&1 ||
    umoci unpack --image "$dest/debian-oci:debian" "$do_work/bundle"
  tar -C "$do_work/bundle/rootfs" -xf "$do_work/rootfs.tar"
  umoci repack --image "$dest/debian-oci:debian" "$do_work/bundle"
  umoci gc --layout "$dest/debian-oci"
  rm -rf "$do_work"
  touch "$do_stamp"
fi
