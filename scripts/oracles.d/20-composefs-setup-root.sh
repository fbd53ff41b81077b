# composefs-setup-root 0.9.4 (composefs-rs's initramfs tool), built from the Rust package
# registry with its locked dependencies; the repository tests mount images through it.
sr_stamp="$dest/.composefs-setup-root-0.9.4"
if ! { [ -f "$sr_stamp" ] && [ -x "$dest/bin/composefs-setup-root" ]; }; then
  echo "install-oracles: building composefs-setup-root 0.9.4 (about a minute)" >&2
  cargo install --quiet --locked --root "$dest/setup-root" composefs-setup-root --version 0.9.4 >&2
  ln -sfn "$dest/setup-root/bin/composefs-setup-root" "$dest/bin/composefs-setup-root"
  "$dest/bin/composefs-setup-root" --help | grep -q -- '--sysroot' || {
    echo "install-oracles: composefs-setup-root does not start" >&2; exit 1; }
  touch "$sr_stamp"
fi
