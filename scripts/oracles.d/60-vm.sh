# Virtual-machine kernels for the VM tests (conformance/src/vm, issue 12), sourced by
# scripts/install-oracles. Host tools: qemu-system-x86 (the machine), busybox-static (the
# guest's shell and mount), e2fsprogs (mkfs.ext4 -O verity for the guest's disk), zstd/xz (the
# modules are compressed). Kernel packages are only downloaded, never installed:
#   .oracles/vm/kernels/bookworm/  bookworm's linux-image-*-cloud-amd64 (6.1)
#   .oracles/vm/kernels/sid/       sid's newest linux-image-*-cloud-amd64, with the
#                                  linux-binary-* and linux-modules-* packages it is split into
vm_dest="$dest/vm"
vm_stamp="$vm_dest/.installed-v2"
vm_install() {
  local missing=()
  command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
  # the static build: ldd refuses a static executable
  { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || missing+=(busybox-static)
  command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
  command -v zstd >/dev/null || missing+=(zstd)
  command -v xz >/dev/null || missing+=(xz-utils)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "install-oracles: installing host tools for the VM tests: ${missing[*]}" >&2
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
  mkdir -p "$vm_dest/kernels"
  # sid's newest cloud kernel, from the shared sid/forky lists.
  apt_lists
  local sid_pkg
  sid_pkg=$(apt-cache "${apt_opts[@]}" depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [ -n "$sid_pkg" ] || { echo "install-oracles: sid offers no linux-image-cloud-amd64" >&2; exit 1; }
  # bookworm's 6.1 cloud kernel, from a private bookworm apt state.
  local bw="$vm_dest/apt-bookworm"
  local bw_opts=(-o "Dir::Etc::SourceList=$bw/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$bw/lists" -o "Dir::Cache=$bw/cache" -o APT::Sandbox::User=root -q)
  mkdir -p "$bw/lists/partial" "$bw/cache/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main" > "$bw/sources.list"
  apt-get "${bw_opts[@]}" update >/dev/null
  local bw_pkg
  bw_pkg=$(apt-cache "${bw_opts[@]}" depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [ -n "$bw_pkg" ] || { echo "install-oracles: bookworm offers no linux-image-cloud-amd64" >&2; exit 1; }
  rm -rf "$vm_dest/kernels"
  mkdir -p "$vm_dest/kernels/sid" "$vm_dest/kernels/bookworm"
  # Newer kernels split the image package into linux-binary-* and linux-modules-*.
  local sid_parts
  sid_parts=$(apt-cache "${apt_opts[@]}" depends "$sid_pkg" | awk '/Depends: linux-(binary|modules)-/ {print $2}')
  (cd "$vm_dest/kernels/sid" && apt-get "${apt_opts[@]}" download "$sid_pkg" $sid_parts >/dev/null)
  (cd "$vm_dest/kernels/bookworm" && apt-get "${bw_opts[@]}" download "$bw_pkg" >/dev/null)
  rm -rf "$bw/cache/archives"
  echo "sid $sid_pkg bookworm $bw_pkg" > "$vm_stamp"
  echo "install-oracles: VM kernels $bw_pkg (bookworm), $sid_pkg (sid) in $vm_dest/kernels" >&2
}
if ! { [ -f "$vm_stamp" ] && [ -d "$vm_dest/kernels/sid" ] && [ -d "$vm_dest/kernels/bookworm" ] \
  && command -v qemu-system-x86_64 >/dev/null; }; then
  vm_install
fi
