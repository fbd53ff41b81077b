# ostree 2026.4 from Debian sid (ostree, libostree-1-1, ostree-boot, ostree-tests and the
# shared libraries they need, following Depends of library packages, first alternatives only),
# unpacked into .oracles/ostree/prefix and started through sid's own loader, like the C oracle.
# Wrappers in .oracles/ostree/bin (ostree, composefs-info, mkcomposefs, ostree-trivial-httpd)
# put $CAPI_LIBDIR, when set, first on the library path: that is how the capi tests run
# ostree and C's tools on our libcomposefs.so.1. valgrind (a host tool) is installed for the
# capi leak checks.
os_dir="$dest/ostree"
os_stamp="$os_dir/.installed-v1"
# Host tools: valgrind for the leak checks, attr (setfattr) and the rest for ostree's test
# scripts.
os_tools=()
for t in valgrind:valgrind setfattr:attr cpio:cpio jq:jq gpg:gnupg gcc:gcc pkg-config:pkg-config; do
  command -v "${t%%:*}" >/dev/null || os_tools+=("${t#*:}")
done
if [ ${#os_tools[@]} -gt 0 ]; then
  apt-get install -y --no-install-recommends "${os_tools[@]}" >/dev/null 2>&1 || {
    apt-get update >/dev/null && apt-get install -y --no-install-recommends "${os_tools[@]}" >/dev/null; }
fi
if [ ! -f "$os_stamp" ]; then
  apt_lists
  rm -rf "$os_dir"
  mkdir -p "$os_dir/debs" "$os_dir/prefix" "$os_dir/bin"
  declare -A os_seen=()
  os_queue=(libostree-1-1 ostree ostree-boot ostree-tests libsoup-3.0-0 composefs libcomposefs1)
  os_pkgs=()
  while [ ${#os_queue[@]} -gt 0 ]; do
    p=${os_queue[0]}
    os_queue=("${os_queue[@]:1}")
    [ -n "${os_seen[$p]:-}" ] && continue
    os_seen[$p]=1
    os_pkgs+=("$p")
    for d in $(apt-cache "${apt_opts[@]}" show --no-all-versions "$p" 2>/dev/null |
      sed -n 's/^\(Pre-\)\?Depends: //p' | tr ',' '\n' | sed 's/|.*//; s/(.*//; s/:any//; s/ //g'); do
      case "$d" in lib*|zlib1g) [ -z "${os_seen[$d]:-}" ] && os_queue+=("$d") ;; esac
    done
  done
  (cd "$os_dir/debs" && apt-get "${apt_opts[@]}" download "${os_pkgs[@]}" >/dev/null)
  for d in "$os_dir"/debs/*.deb; do dpkg -x "$d" "$os_dir/prefix"; done
  os_p="$os_dir/prefix"
  os_libs="$os_p/usr/lib/x86_64-linux-gnu:$os_p/lib/x86_64-linux-gnu"
  os_wrap() { # name, binary
    cat > "$os_dir/bin/$1" <<WRAP
#!/bin/sh
exec "$os_p/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --argv0 "\$0" --library-path "\${CAPI_LIBDIR:+\$CAPI_LIBDIR:}$os_libs" "$2" "\$@"
WRAP
    chmod +x "$os_dir/bin/$1"
  }
  os_wrap ostree "$os_p/usr/bin/ostree"
  os_wrap composefs-info "$os_p/usr/bin/composefs-info"
  os_wrap mkcomposefs "$os_p/usr/bin/mkcomposefs"
  os_wrap ostree-trivial-httpd "$os_p/usr/libexec/installed-tests/libostree/ostree-trivial-httpd"
  "$os_dir/bin/ostree" --version | grep -q composefs || {
    echo "install-oracles: sid ostree does not start or lacks composefs" >&2; exit 1; }
  touch "$os_stamp"
  echo "install-oracles: ostree oracle in $os_dir/bin" >&2
fi

# valgrind needs the symbols of the dynamic loader it runs; sid's ld.so is stripped, so its
# debug file (libc6-dbg of the same version) goes where --extra-debuginfo-path finds it:
# .oracles/valgrind-debug/<directory of ld.so>/<its .gnu_debuglink name>.
vg_stamp="$dest/.valgrind-debug-v1"
if [ ! -f "$vg_stamp" ]; then
  apt_lists
  vg_ld=$(readlink -f "$dest/prefix/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
  vg_ver=$(dpkg-deb -f "$dest"/debs/libc6_*.deb Version)
  vg_tmp="$dest/valgrind-debug.tmp"
  rm -rf "$vg_tmp" "$dest/valgrind-debug"
  mkdir -p "$vg_tmp"
  (cd "$vg_tmp" && apt-get "${apt_opts[@]}" download "libc6-dbg=$vg_ver" >/dev/null)
  dpkg -x "$vg_tmp"/libc6-dbg_*.deb "$vg_tmp/x"
  vg_id=$(readelf -n "$vg_ld" | sed -n 's/.*Build ID: //p')
  vg_link=$(readelf --string-dump=.gnu_debuglink "$vg_ld" | sed -n 's/^ *\[ *0\] *//p')
  mkdir -p "$dest/valgrind-debug$(dirname "$vg_ld")"
  cp "$vg_tmp/x/usr/lib/debug/.build-id/${vg_id:0:2}/${vg_id:2}.debug" \
    "$dest/valgrind-debug$(dirname "$vg_ld")/$vg_link"
  rm -rf "$vg_tmp"
  touch "$vg_stamp"
  echo "install-oracles: loader debug info for valgrind in $dest/valgrind-debug" >&2
fi
