# Sourced by scripts/install-oracles (sees root, dest, apt_opts, apt_lists).
#
# C's composefs-dump and composefs-fuse, built from the composefs 1.0.8 source package as
# controls: Debian ships neither (upstream builds them with `install : false`). They are the
# oracles for our composefs-dump and composefs-fuse and the control run of C's shell tests.
#   - composefs-dump links against the oracle libcomposefs.so.1 and runs through the oracle's
#     dynamic loader, like the other wrappers;
#   - composefs-fuse (cfs-fuse.c) uses only inline helpers of libcomposefs's headers and links
#     against the host libfuse3.
# Also the host tools C's shell tests look for: fuse3 (fusermount, fusermount3), and gcc,
# pkg-config and libfuse3-dev to build the two tools.

c_tools_stamp="$dest/.c-tools-v2"
if ! { [ -f "$c_tools_stamp" ] && [ -x "$dest/bin/composefs-dump" ] && [ -x "$dest/bin/composefs-fuse" ] \
  && command -v fusermount >/dev/null; }; then
  c_tools_missing=()
  for p in gcc pkg-config libfuse3-dev fuse3; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || c_tools_missing+=("$p")
  done
  if [ ${#c_tools_missing[@]} -gt 0 ]; then
    echo "install-oracles: installing ${c_tools_missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${c_tools_missing[@]}" >/dev/null 2>&1 || {
      apt-get update >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${c_tools_missing[@]}" >/dev/null
    }
  fi

  c_src="$dest/src/composefs"
  c_build="$dest/c-tools"
  rm -rf "$c_build"
  mkdir -p "$c_build"
  # The few configuration macros the two tools and the headers they include look at.
  cat > "$c_build/config.h" <<'CONF'
#define HAVE_ENDIAN_H 1
#define HAVE_REALLOCARRAY 1
#define HAVE_FUSE3 1
#define HAVE_OPENSSL 1
CONF
  c_libdir="$dest/prefix/usr/lib/x86_64-linux-gnu"
  # Link against the oracle's libcomposefs.so.1 (newer glibc than the host's: its symbols are
  # resolved at run time by the oracle's loader, so leave them unresolved at link time).
  mkdir -p "$c_build/libexec"
  gcc -O2 -I"$c_build" -I"$c_src" -o "$c_build/libexec/composefs-dump" "$c_src/tools/composefs-dump.c" \
    "$c_libdir/libcomposefs.so.1" -Wl,--allow-shlib-undefined
  # shellcheck disable=SC2046
  gcc -O2 -I"$c_build" -I"$c_src" -o "$c_build/composefs-fuse" "$c_src/tools/cfs-fuse.c" \
    $(pkg-config --cflags --libs fuse3)

  c_libpath="$c_libdir:$dest/prefix/lib/x86_64-linux-gnu"
  cat > "$dest/bin/composefs-dump" <<WRAP
#!/bin/sh
exec "$c_libdir/ld-linux-x86-64.so.2" --library-path "$c_libpath" --argv0 "\$0" "$c_build/libexec/composefs-dump" "\$@"
WRAP
  # cfs-fuse daemonizes and must find the host libfuse3: run it as built, under its own name.
  ln -sfn "$c_build/composefs-fuse" "$dest/bin/composefs-fuse"
  chmod +x "$dest/bin/composefs-dump"

  # Smoke check: C's composefs-dump rewrites an image it is given.
  printf '/ 0 40755 2 0 0 0 0.0 - - -\n' | "$dest/bin/mkcomposefs" --from-file - "$c_build/smoke.img"
  "$dest/bin/composefs-dump" "$c_build/smoke.img" "$c_build/smoke2.img"
  cmp "$c_build/smoke.img" "$c_build/smoke2.img"
  rm -f "$c_build/smoke.img" "$c_build/smoke2.img"
  "$dest/bin/composefs-fuse" -V >/dev/null
  echo "c-tools 1.0.8" > "$c_tools_stamp"
  echo "install-oracles: C composefs-dump and composefs-fuse in $dest/bin" >&2
fi
