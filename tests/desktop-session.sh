#!/bin/sh
# Runs a command the way the tests need a desktop: a private D-Bus session
# bus, an unlocked gnome-keyring Secret Service whose keyrings live in a
# throw-away folder (the user's own keyring is never touched), and an Xvfb
# display. Usage: tests/desktop-session.sh COMMAND [ARGS...]
set -eu
if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 64
fi
session_home=$(mktemp -d "${TMPDIR:-/tmp}/wa-desktop-session.XXXXXX")
# GTK may start xdg-document-portal, which mounts a FUSE file system at
# $XDG_RUNTIME_DIR/doc: unmount it before removing the folder, and never let
# the clean-up change the command's exit status.
cleanup() {
    status=$?
    fusermount -u -z "$session_home/runtime/doc" 2>/dev/null || umount -l "$session_home/runtime/doc" 2>/dev/null || true
    rm -rf "$session_home" 2>/dev/null || true
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export XDG_DATA_HOME="$session_home/data"
export XDG_RUNTIME_DIR="$session_home/runtime"
mkdir -p "$XDG_DATA_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
dbus-run-session -- sh -c '
    # The password only unlocks this throw-away keyring.
    printf %s test-keyring | gnome-keyring-daemon --unlock --components=secrets >/dev/null
    exec xvfb-run --auto-servernum --server-args="-screen 0 1280x800x24" "$@"
' desktop-session "$@"
