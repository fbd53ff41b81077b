# C mount.composefs 1.0.8 (Debian's binary, unpacked by the base install) as an oracle.
# Started through the oracle's own dynamic loader like the other wrappers; `--argv0 "$0"` makes
# its argv[0] the wrapper's path, so its getopt and errx messages name what was run.
mc_stamp="$dest/.mount-composefs-v1"
if ! { [ -f "$mc_stamp" ] && [ -x "$dest/bin/mount.composefs" ]; }; then
  mc_libdir="$dest/prefix/usr/lib/x86_64-linux-gnu:$dest/prefix/lib/x86_64-linux-gnu"
  cat > "$dest/bin/mount.composefs" <<WRAP
#!/bin/sh
exec "$dest/prefix/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --argv0 "\$0" --library-path "$mc_libdir" "$dest/prefix/usr/sbin/mount.composefs" "\$@"
WRAP
  chmod +x "$dest/bin/mount.composefs"
  "$dest/bin/mount.composefs" -h 2>&1 | grep '^usage: mount.composefs ' >/dev/null || {
    echo "install-oracles: mount.composefs does not start" >&2; exit 1; }
  touch "$mc_stamp"
  echo "install-oracles: mount.composefs oracle in $dest/bin" >&2
fi
