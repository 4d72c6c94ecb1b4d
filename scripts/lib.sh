# lib.sh — helpers the project's scripts source (not a command of its own).

# quiet_swift_build ARGS...: `swift build ARGS...` without its progress lines; the calling
# script stops with the build's exit status when the build fails (a filter must never turn a
# failed build into a passing step that then uses a stale binary).
quiet_swift_build() {
  local status
  set +e
  swift build "$@" 2>&1 | grep -vE "^\[[0-9]+/[0-9]+\]|should be located under|^Building|^Build of product|^Compiling|^Write |Cannot export local symbol|the use of .mktemp. is dangerous|^(Fetching|Fetched|Computing|Computed|Creating working copy|Working copy of) "
  status=${PIPESTATUS[0]}
  set -e
  if ((status != 0)); then
    echo "$(basename "$0"): swift build $* failed (exit $status)" >&2
    exit "$status"
  fi
}

# usage: prints the calling script's header comment (the lines after `#!` up to the first line
# that is not a comment), as its --help.
usage() {
  awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
}

# The Slurm release of this machine's Debian packages (installed by scripts/install-deps;
# 22.05.8 on bookworm, which the project's machines run): the default release. Every other
# release is built from source by scripts/slurm-build.
DEBIAN_SLURM=$(dpkg-query -W -f='${source:Upstream-Version}' libslurm-dev 2>/dev/null || true)
DEBIAN_SLURM=${DEBIAN_SLURM:-22.05.8}
