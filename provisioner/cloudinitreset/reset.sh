#!/bin/sh
# shellcheck shell=sh
#
# reset.sh: the guest side of cloudimg-cloudinit-reset (packer-plugin-cloudimg).
#
# A POSIX sh library: defining its functions runs nothing. The plugin
# uploads it with a plan appended, in one file that ends in
#
#	main 3<<'CLOUDIMG_PLAN'
#	<the plan: one record per line>
#	CLOUDIMG_PLAN
#
# and runs that file as root. The plan is plain data, written by the
# plugin (plan.go): it says WHAT to read or change; this file knows HOW.
# Nothing in it is evaluated: each record is a verb and its arguments,
# separated by single blanks, where only the last argument may hold blanks
# (a path, a text); no record holds a newline. Blank lines and lines that
# start with # are skipped. The plan comes on descriptor 3, so that the
# commands run here keep the session's stdin.
#
# The first record says what the plan is:
#
#	collect <nonce>              read the account files and the guest facts
#	reset <nonce> apply|dry-run  remove the build user and reset cloud-init
#
# and the plan's last record is "end": a plan cut short stops with an error.
# The records of each kind are listed above collect_record and
# reset_record below.
#
# ROOT (environment, default empty) reads and changes everything below that
# directory instead of / (for tests); the commands that act on the running
# system (systemctl, journalctl, apt-get, run-parts, fstrim, poweroff) are
# then skipped.
#
# The reset's output, one report line each (parsed by the plugin, report.go):
#   CHECK <name> ok|fail <detail>, CHANGED/REMOVED <path>, SET <path> <what>,
#   NOTE <text>, ABORT <reason> (nothing was changed), ERROR <text>,
#   DONE <nonce> ok|fail; in a dry run WOULD-CHANGE, WOULD-REMOVE and
#   WOULD-SET say what it would do, and "NOTE would run <command>".
# Its exit status: 0 all checks passed, 1 a check failed, 3 aborted before
# any change, anything else: stopped early (see the ERROR line).
# The collect plan's output is described in collect.go (ParseCollect).

# main reads the plan on descriptor 3 and carries out its records in order.
# Consecutive records of a batched kind (expect and expect-new; remove and
# remove-file; remove-glob; verify-sha) are carried out together, with one
# process for all of them, when a record of another kind comes.
main() {
	while :; do
		if ! IFS= read -r PLAN_LINE <&3; then
			printf 'reset.sh: no plan on descriptor 3\n' >&2
			exit 2
		fi
		case $PLAN_LINE in '' | '#'*) ;; *) break ;; esac
	done
	set -f
	# shellcheck disable=SC2086 # the first record's words: letters, digits, dashes
	set -- $PLAN_LINE
	set +f
	case ${1:-} in
	collect) collect_setup "${2:-}" ;;
	reset) reset_setup "${2:-}" "${3:-}" ;;
	*)
		printf 'reset.sh: the plan starts with %s, not collect or reset\n' "$PLAN_LINE" >&2
		exit 2
		;;
	esac
	KIND=$1
	BATCH_VERB=
	BATCH=
	while IFS= read -r PLAN_LINE <&3; do
		case $PLAN_LINE in '' | '#'*) continue ;; esac
		PLAN_VERB=${PLAN_LINE%%" "*}
		PLAN_ARG=
		if [ "$PLAN_VERB" != "$PLAN_LINE" ]; then PLAN_ARG=${PLAN_LINE#*" "}; fi
		case $PLAN_VERB in
		expect | expect-new) PLAN_BATCH=expect ;;
		remove | remove-file) PLAN_BATCH=remove ;;
		remove-glob | verify-sha) PLAN_BATCH=$PLAN_VERB ;;
		*) PLAN_BATCH= ;;
		esac
		if [ "$PLAN_BATCH" != "$BATCH_VERB" ]; then flush_batch; fi
		if [ "$PLAN_VERB" = end ]; then exit 0; fi
		if [ "$KIND" = collect ]; then
			collect_record "$PLAN_VERB" "$PLAN_ARG"
		else
			reset_record "$PLAN_VERB" "$PLAN_ARG"
		fi
	done
	flush_batch
	say "ERROR the plan ended without its end record (was the upload cut short?)"
	exit 2
}

# batch_add adds one item (a line) to the batch of kind $1.
batch_add() { # kind item
	BATCH_VERB=$1
	BATCH="${BATCH:+$BATCH
}$2"
}

# flush_batch carries out the batch (see main) and empties it.
flush_batch() {
	kind=$BATCH_VERB
	BATCH_VERB=
	case $kind in
	'') return 0 ;;
	expect)
		expect_shas <<CLOUDIMG_SUMS
$BATCH
CLOUDIMG_SUMS
		;;
	verify-sha)
		verify_shas <<CLOUDIMG_SUMS
$BATCH
CLOUDIMG_SUMS
		;;
	remove | remove-glob)
		old_ifs=$IFS
		IFS='
'
		set -f
		# shellcheck disable=SC2086 # one item per line; no globbing (set -f)
		set -- $BATCH
		set +f
		IFS=$old_ifs
		if [ "$kind" = remove ]; then remove "$@"; else remove_glob "$@"; fi
		;;
	esac
	BATCH=
}

# field splits a record's arguments: FIELD is the first (up to a blank),
# REST what follows it (the last argument may hold blanks).
field() { # args
	FIELD=${1%%" "*}
	REST=
	if [ "$FIELD" != "$1" ]; then REST=${1#*" "}; fi
}

# ------------------------------------------------------------- collect --

collect_setup() { # nonce
	set -u
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	export PATH
	LC_ALL=C
	export LC_ALL
	ROOT=${ROOT:-}
	ROOT=${ROOT%/}
	NONCE=$1
	READ_LIST=
	say "BEGIN $NONCE"
}

# collect_record carries out one record of a collect plan:
#
#	read-file <path>                 read the file (if it is there)
#	read-saved <dir> <name>...       each <dir>/<name> and <dir>/<name>.absent
#	                                 when <dir> exists, else each /etc/<name>
#	read-first <path> <path>         the first if it is a file, else the second
#	read-dir <dir>                   the files in <dir> with plain names
#	send-files                       FILE (sha256, base64) or NOFILE for each
#	fact-kernel, fact-hostname, fact-macs, fact-packages
#	done                             DONE <nonce>
#
# The paths hold no blanks (they are the plugin's own).
collect_record() { # verb args
	case $1 in
	read-file) read_list_add "$2" ;;
	read-saved)
		field "$2"
		dir=$FIELD
		if [ -d "$ROOT$dir" ]; then
			for n in $REST; do read_list_add "$dir/$n"; read_list_add "$dir/$n.absent"; done
		else
			for n in $REST; do read_list_add "/etc/$n"; done
		fi
		;;
	read-first)
		field "$2"
		if [ -f "$ROOT$FIELD" ]; then read_list_add "$FIELD"; else read_list_add "$REST"; fi
		;;
	read-dir) read_dir "$2" ;;
	send-files)
		old_ifs=$IFS
		IFS='
'
		set -f
		# shellcheck disable=SC2086 # one path per line; no globbing (set -f)
		set -- $READ_LIST
		set +f
		IFS=$old_ifs
		send_files "$@"
		;;
	fact-kernel) say "FACT kernel $(uname -r 2>/dev/null || true)" ;;
	fact-hostname) fact_hostname ;;
	fact-macs) fact_macs ;;
	fact-packages) fact_packages ;;
	done) say "DONE $NONCE" ;;
	*) unknown_record "$1" ;;
	esac
}

unknown_record() { # verb
	say "ERROR unknown plan record $1"
	exit 2
}

read_list_add() { # path
	READ_LIST="${READ_LIST:+$READ_LIST
}$1"
}

# read_dir adds the regular files of a directory (not symbolic links) to
# the files to read; a name outside [A-Za-z0-9._~@+-] is skipped, with a note.
read_dir() { # dir
	if [ ! -d "$ROOT$1" ]; then return 0; fi
	for f in "$ROOT$1"/* "$ROOT$1"/.[!.]*; do
		if [ ! -f "$f" ] || [ -L "$f" ]; then continue; fi
		n=${f##*/}
		case $n in
		*[!A-Za-z0-9._~@+-]*)
			say "NOTE $1: skipped an entry with an unusual name"
			continue
			;;
		esac
		read_list_add "$1/$n"
	done
}

# send_files prints each file's sha256 and contents (FILE <sha256> <path>,
# the contents in base64, END), or NOFILE <path>: one sha256sum for all of
# them (each process costs a fraction of a second in an emulated guest),
# then one base64 each.
send_files() { # paths (no blanks)
	existing=
	for p in "$@"; do
		if [ -f "$ROOT$p" ] && [ -r "$ROOT$p" ]; then existing="$existing .$p"; fi
	done
	SUMS=
	# shellcheck disable=SC2086 # one word per path
	if [ -n "$existing" ]; then SUMS=$(cd "$ROOT/" && sha256sum -- $existing 2>/dev/null); fi
	for p in "$@"; do
		sum=
		while read -r s f; do
			if [ "$f" = ".$p" ]; then sum=$s; fi
		done <<CLOUDIMG_SUMS
$SUMS
CLOUDIMG_SUMS
		if [ -n "$sum" ]; then
			say "FILE $sum $p"
			base64 <"$ROOT$p"
			say END
		else
			say "NOFILE $p"
		fi
	done
}

# fact_hostname: the build's hostname, without a process (read is built in).
fact_hostname() {
	if [ -r "$ROOT/proc/sys/kernel/hostname" ] && read -r h <"$ROOT/proc/sys/kernel/hostname"; then
		say "FACT hostname $h"
	fi
}

# fact_macs: the MAC addresses of the build VM's NICs: the interfaces
# backed by a device (not lo, bridges, veth or tunnels), again without a
# process.
fact_macs() {
	for d in "$ROOT"/sys/class/net/*; do
		if [ -e "$d/device" ] && [ -r "$d/address" ] && read -r a <"$d/address"; then
			say "FACT mac $a"
		fi
	done
}

# fact_packages: the package list is the image's SBOM: name, version,
# architecture and the source package each was built from, in one
# dpkg-query. cloud-init's version comes from the package list where there
# is one: starting cloud-init (Python) takes seconds in an emulated guest.
fact_packages() {
	if [ -f "$ROOT/var/lib/dpkg/status" ] && command -v dpkg-query >/dev/null 2>&1; then
		say "FACT package-manager dpkg"
		# shellcheck disable=SC2016 # ${...} are dpkg-query's fields, not the shell's
		dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f='PKG\t${Status}\t${Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}\n' 2>/dev/null || say "NOTE dpkg-query failed"
	elif [ -z "$ROOT" ] && command -v rpm >/dev/null 2>&1; then
		say "FACT package-manager rpm"
		if command -v cloud-init >/dev/null 2>&1; then
			say "FACT cloud-init $(cloud-init --version 2>&1 | head -n 1)"
		fi
		rpm -qa --qf 'PKG\tinstalled\t%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\t%{ARCH}\n' 2>/dev/null || say "NOTE rpm -qa failed"
	else
		say "NOTE Warning: the guest has no dpkg-query (nor rpm): no package list is recorded, and the image's SBOM will list no packages"
	fi
}

# --------------------------------------------------------------- reset --

# reset_setup prepares the reset: strict mode, a known environment, the
# temporary directory (the plan's), the state, the exit trap.
reset_setup() { # nonce apply|dry-run
	set -eu
	umask 077
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	export PATH
	LC_ALL=C
	export LC_ALL
	# The report must get out even if the SSH session is gone: a hang-up or
	# a closed pipe must not stop the script half-way.
	trap '' HUP PIPE

	ROOT=${ROOT:-}
	case $ROOT in
	'' | /*) ;;
	*)
		printf 'ROOT must be an absolute path\n' >&2
		exit 2
		;;
	esac
	ROOT=${ROOT%/}
	# The script runs from a private temporary directory that holds the new
	# contents of the files it installs, and removes that directory when
	# it ends. Nothing here needs the build user to exist: the user
	# vanishes half-way.
	DIR=$(cd "$(dirname "$0")" && pwd -P)
	cd /

	NONCE=$1
	case $2 in
	apply) DRY=0 ;;
	dry-run) DRY=1 ;;
	*)
		printf 'reset.sh: the plan says %s, not apply or dry-run\n' "$2" >&2
		exit 2
		;;
	esac
	USER_NAME=
	USER_UID=-1
	USER_GID=-1
	USER_HOME=
	BUILD_HOSTNAMES=
	BUILD_MACS=
	HOSTNAME_SUMMARY=
	VITAL=
	STEP=start
	FAILED=0
	LOCKED=
	STAGED=
	OWNED_PID=
	SEED_PID=
	TRACES_PID=
	TRACES_RC=0
	TRACES_HOST=
	TRACES_MAC=
	NETWORK_STATE=
	PIDFILES=
	trap on_exit EXIT
	trap 'exit 130' INT TERM
}

# reset_record carries out one record of a reset plan. <path> is a guest
# path (ROOT is added here) and may hold blanks; <name> is a file's name in
# the temporary directory; <sha256> is hex; the other arguments are words.
#
# What the plan is about (before anything else):
#	user <name> <uid> <gid>      the build user; uid -1: absent; gid: the
#	                             removed personal group's, -1 for none
#	home <path>                  the home to remove (checked to be the user's)
#	hostnames <name>...          the build's host names, to look for
#	macs <address>...            the build VM's NICs' MAC addresses, to look for
#	protect <path>...            paths never removed (no blanks)
#	data <name> <base64>         a file for the temporary directory
#
# What to do:
#	step <name>                  names the step for an ERROR line
#	check <name> ok|fail <text>  a check the plan decided (CHECK line)
#	lock <name>...               shadow's lock on each /etc/<name>; unlock
#	expect <sha256> <path>       abort unless the file has these contents
#	expect-new <sha256> <name>   the same for a new file in the directory
#	visudo <name> <path>         abort unless the new <path> passes visudo -c
#	start-owned-search           the search for the user's files, beside
#	start-seed-stop              stopping systemd-random-seed, beside
#	start-traces-search all|keep-host-keys   the search for the build's
#	                             names and addresses, beside
#	stage <name> keep|<mode> <path>   the new contents next to <path>
#	sync                         sync (not in a dry run)
#	install <path>               the staged file replaces <path>
#	remove <path>                remove (with what it holds)
#	remove-file <path>           remove if a regular file (not a link)
#	remove-glob <pattern>        remove what the pattern matches
#	remove-extra <pattern>       the same, one call each (extra_paths)
#	remove-home                  remove the home if the user owns it
#	set-machine-id empty|uninitialized
#	restore-etc <dir> <name>...  move <dir>/<name> back to /etc/<name>
#	empty <path>                 truncate
#	clean-cloud-state keep-seed|all   /var/lib/cloud's contents, the NIC
#	                             rules cloud-init's ENI renderer wrote
#	wait-seed-stop               the end of start-seed-stop
#	clean-tmp, remove-shell-history, clean-apt-lists
#	run fstrim|apt-get-clean|journal-rotate|cloud-clean-hooks
#	write-identity <name> <sha256> <path>
#
# The checks once all is done (not in a dry run):
#	verify-keyed <file> [<field>...]    no entry for the user (nor as member)
#	verify-members <file> <field>...    the user is in no member list
#	verify-sha <sha256> <path>          a CHECK fail if the contents differ
#	verify-sudoers, verify-home, verify-machine-id empty|uninitialized,
#	hostname-summary <text>, verify-build-hostname [<path>...] (paths the
#	source image did not have), verify-network,
#	verify-cloud-dir keep-seed|all, verify-statoverride, verify-dpkg-audit,
#	note-owned-files
#	done                         DONE <nonce> ok|fail (exit 1 if a check failed)
#	poweroff <seconds>           power off that long after the end
reset_record() { # verb args
	a=$2
	case $1 in
	user)
		field "$a"
		USER_NAME=$FIELD
		field "$REST"
		USER_UID=$FIELD
		USER_GID=$REST
		;;
	home) USER_HOME=$a ;;
	hostnames) BUILD_HOSTNAMES=$a ;;
	macs) BUILD_MACS=$a ;;
	protect) VITAL=$a ;;
	data)
		field "$a"
		case $FIELD in '' | .* | */*) unknown_record "data (a name with a slash or a leading dot)" ;; esac
		base64 -d >"$DIR/$FIELD" <<CLOUDIMG_BASE64
$REST
CLOUDIMG_BASE64
		;;
	step) STEP=$a ;;
	check)
		field "$a"
		name=$FIELD
		field "$REST"
		check "$name" "$FIELD" "$REST"
		;;
	lock)
		set -f
		# shellcheck disable=SC2086 # names of account files: words
		lock $a
		set +f
		;;
	unlock) unlock ;;
	expect)
		field "$a"
		batch_add expect "$FIELD  $ROOT$REST"
		;;
	expect-new)
		field "$a"
		batch_add expect "$FIELD  $DIR/$REST"
		;;
	visudo)
		field "$a"
		if command -v visudo >/dev/null 2>&1; then
			visudo -cqf "$DIR/$FIELD" >/dev/null 2>&1 || abort "the new $REST does not pass visudo -c; nothing was changed"
			check sudoers-syntax ok "the new $REST passes visudo -c"
		fi
		;;
	start-owned-search)
		# Slow work that does not depend on what follows runs beside it
		# (the guest has more than one CPU; each process costs a fraction
		# of a second under emulation).
		find_owned_files &
		OWNED_PID=$!
		;;
	start-seed-stop)
		# Stopping the service saves the seed once more; stopped, it does
		# not save it again at power-off.
		stop_seed_service >"$DIR/random-seed.out" &
		SEED_PID=$!
		;;
	start-traces-search)
		# The search for what still names the build (its host names under
		# /etc, its NICs' MAC addresses there and in the network state
		# under /var/lib) runs beside the disk work that follows, which
		# changes nothing there.
		if [ -n "$BUILD_MACS" ]; then
			for d in /var/lib/systemd/network /var/lib/NetworkManager; do
				if [ -d "$ROOT$d" ] && [ ! -L "$ROOT$d" ]; then NETWORK_STATE="$NETWORK_STATE $d"; fi
			done
		fi
		find_traces "$a" &
		TRACES_PID=$!
		;;
	stage)
		field "$a"
		name=$FIELD
		field "$REST"
		stage "$REST" "$name" "$FIELD"
		;;
	sync) run_quiet sync ;;
	install) install_file "$a" ;;
	remove) batch_add remove "$ROOT$a" ;;
	remove-file)
		if [ -f "$ROOT$a" ] && [ ! -L "$ROOT$a" ]; then batch_add remove "$ROOT$a"; fi
		;;
	remove-glob) batch_add remove-glob "$a" ;;
	remove-extra) remove_glob "$a" ;;
	remove-home) remove_home ;;
	set-machine-id) set_machine_id "$a" ;;
	restore-etc)
		field "$a"
		set -f
		# shellcheck disable=SC2086 # the names of files in /etc: words
		restore_etc "$FIELD" $REST
		set +f
		;;
	empty) empty_file "$a" ;;
	clean-cloud-state) clean_cloud_state "$a" ;;
	wait-seed-stop) wait_seed_stop ;;
	clean-tmp) clean_tmp ;;
	remove-shell-history) remove_shell_history ;;
	clean-apt-lists) clean_apt_lists ;;
	run) run_named "$a" ;;
	write-identity)
		field "$a"
		name=$FIELD
		field "$REST"
		write_identity "$name" "$FIELD" "$REST"
		;;
	verify-keyed)
		set -f
		# shellcheck disable=SC2086 # a file's name and field numbers: words
		verify_keyed $a
		set +f
		;;
	verify-members)
		set -f
		# shellcheck disable=SC2086 # a file's name and field numbers: words
		verify_members $a
		set +f
		;;
	verify-sha)
		field "$a"
		batch_add verify-sha "$FIELD  $ROOT$REST"
		;;
	verify-sudoers) verify_sudoers ;;
	verify-home) verify_home ;;
	verify-machine-id) verify_machine_id "$a" ;;
	hostname-summary) HOSTNAME_SUMMARY=$a ;;
	verify-build-hostname)
		set -f
		# shellcheck disable=SC2086 # /etc/hostname, /etc/hosts: words
		verify_build_hostname "$(joined "$BUILD_HOSTNAMES")" "$HOSTNAME_SUMMARY" $a
		set +f
		;;
	verify-network) verify_network "$(mac_shown)" ;;
	verify-cloud-dir) verify_cloud_dir "$a" ;;
	verify-statoverride) verify_statoverride ;;
	verify-dpkg-audit) verify_dpkg_audit ;;
	note-owned-files) note_owned_files ;;
	done)
		if [ "$FAILED" -gt 0 ]; then
			say "DONE $NONCE fail"
			exit 1
		fi
		say "DONE $NONCE ok"
		;;
	poweroff) schedule_poweroff "$a" ;;
	*) unknown_record "$1" ;;
	esac
}

# joined prints words separated by a comma and a blank.
joined() { # words
	out=
	for w in $1; do out="${out:+$out, }$w"; done
	printf '%s' "$out"
}

# mac_shown prints "MAC address <a>" or "MAC addresses <a>, <b>" for the
# build's MAC addresses, or nothing when there are none.
mac_shown() {
	set -f
	# shellcheck disable=SC2086 # MAC addresses: words
	set -- $BUILD_MACS
	set +f
	case $# in
	0) ;;
	1) printf 'MAC address %s' "$1" ;;
	*) printf 'MAC addresses %s' "$(joined "$*")" ;;
	esac
}

# ------------------------------------------------------------- functions --

say() { printf '%s\n' "$*" 2>/dev/null || true; }

check() { # name ok|fail detail
	say "CHECK $1 $2 $3"
	if [ "$2" != ok ]; then FAILED=$((FAILED + 1)); fi
}

abort() {
	say "ABORT $*"
	exit 3
}

on_exit() {
	rc=$?
	set +e
	# Before the directory goes: the search writes into it (seconds at most).
	if [ -n "$OWNED_PID" ]; then wait "$OWNED_PID" 2>/dev/null; fi
	if [ -n "$SEED_PID" ]; then wait "$SEED_PID" 2>/dev/null; fi
	if [ -n "$TRACES_PID" ]; then wait "$TRACES_PID" 2>/dev/null; fi
	for p in $STAGED; do rm -f "$ROOT$p.cloudimg-new"; done
	unlock
	rm -rf "$DIR"
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ] && [ "$rc" -ne 3 ]; then
		say "ERROR the reset stopped during step $STEP (exit status $rc)"
	fi
	exit "$rc"
}

# sums_failing: reads sha256sum -c lines ("sha256  path") on stdin and
# prints the paths whose contents differ or cannot be read; one process for
# all the files when they match.
sums_failing() {
	list=
	while IFS= read -r l; do list="$list$l
"; done
	if [ -z "$list" ] || sha256sum -c --status >/dev/null 2>&1 <<CLOUDIMG_SUMS
$list
CLOUDIMG_SUMS
	then
		return 0
	fi
	while read -r _ p; do
		if [ -n "$p" ] && [ ! -f "$p" ]; then printf '%s\n' "$p"; fi
	done <<CLOUDIMG_SUMS
$list
CLOUDIMG_SUMS
	sha256sum -c 2>/dev/null <<CLOUDIMG_SUMS | sed -n 's/: FAILED.*$//p'
$list
CLOUDIMG_SUMS
}

expect_shas() { # sha256sum -c lines on stdin: abort unless every file is as read
	bad=$(sums_failing)
	if [ -z "$bad" ]; then return 0; fi
	p=${bad%%"
"*}
	if [ ! -f "$p" ]; then abort "${p#"$ROOT"} is missing; nothing was changed"; fi
	abort "${p#"$ROOT"} changed since it was read; nothing was changed"
}

# lock takes shadow's lock on each existing /etc/<name> (the <file>.lock
# link, as useradd, passwd and vipw do), removing a stale one.
lock() { # names
	PIDFILES=
	for n in "$@"; do
		f=$ROOT/etc/$n
		if [ ! -e "$f" ]; then continue; fi
		printf '%s' "$$" >"$f.$$"
		PIDFILES="$PIDFILES $f.$$"
		if ! ln "$f.$$" "$f.lock" 2>/dev/null; then
			pid=$(cat "$f.lock" 2>/dev/null || true)
			if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
				abort "/etc/$n is locked by process $pid ($f.lock); nothing was changed"
			fi
			rm -f "$f.lock"
			if ! ln "$f.$$" "$f.lock" 2>/dev/null; then
				abort "cannot lock /etc/$n; nothing was changed"
			fi
		fi
		LOCKED="$LOCKED $ROOT/etc/$n.lock"
	done
	drop_pidfiles
}

drop_pidfiles() {
	# shellcheck disable=SC2086 # paths without blanks (/etc/<name>.<pid>), one per word
	if [ -n "$PIDFILES" ]; then rm -f $PIDFILES; fi
	PIDFILES=
}

unlock() {
	drop_pidfiles
	# shellcheck disable=SC2086 # paths without blanks (/etc/<name>.lock), one per word
	if [ -n "$LOCKED" ]; then rm -f $LOCKED; fi
	LOCKED=
}

# stage writes the new contents next to the file with the file's owner,
# mode (or the given mode) and SELinux label, ready for an atomic rename.
stage() { # path upload-name keep|mode
	if [ "$DRY" = 1 ]; then return 0; fi
	f=$ROOT$1
	t=$f.cloudimg-new
	STAGED="$STAGED $1"
	if [ "$3" = keep ]; then
		cp --attributes-only --preserve=mode,ownership "$f" "$t"
	else
		cp --attributes-only --preserve=ownership "$f" "$t"
		chmod "$3" "$t"
	fi
	cat "$DIR/$2" >"$t"
	if [ -z "$ROOT" ] && command -v selinuxenabled >/dev/null 2>&1 && selinuxenabled; then
		chcon --reference="$f" "$t"
	fi
}

install_file() { # path
	if [ "$DRY" = 1 ]; then
		say "WOULD-CHANGE $1"
		return 0
	fi
	mv -f "$ROOT$1.cloudimg-new" "$ROOT$1"
	say "CHANGED $1"
}

vital() { # path: empty, or one of the plan's protect record (VITAL)
	if [ -z "$1" ]; then return 0; fi
	for v in $VITAL; do
		if [ "$1" = "$v" ]; then return 0; fi
	done
	return 1
}

remove() { # paths (with $ROOT); removes those that exist, with one rm
	n=$#
	while [ "$n" -gt 0 ]; do
		p=$1
		shift
		n=$((n - 1))
		if [ ! -e "$p" ] && [ ! -L "$p" ]; then continue; fi
		if vital "${p#"$ROOT"}"; then
			say "NOTE refused to remove ${p#"$ROOT"}: it is vital to the system"
			continue
		fi
		set -- "$@" "$p"
	done
	if [ $# -eq 0 ]; then return 0; fi
	if [ "$DRY" = 0 ]; then rm -rf --one-file-system -- "$@" || true; fi
	for p in "$@"; do
		if [ "$DRY" = 1 ]; then
			say "WOULD-REMOVE ${p#"$ROOT"}"
		elif [ -e "$p" ] || [ -L "$p" ]; then
			say "NOTE could not remove all of ${p#"$ROOT"}"
		else
			say "REMOVED ${p#"$ROOT"}"
		fi
	done
}

remove_glob() { # guest patterns (without $ROOT), expanded here; no word splitting
	n=$#
	old_ifs=$IFS
	IFS='
'
	while [ "$n" -gt 0 ]; do
		pattern=$1
		shift
		n=$((n - 1))
		# shellcheck disable=SC2086 # the pattern is meant to be expanded (IFS is a newline, which no pattern holds)
		set -- "$@" "$ROOT"$pattern
	done
	IFS=$old_ifs
	remove "$@"
}

run_quiet() { # command...: mutating, quiet
	if [ "$DRY" = 1 ]; then return 0; fi
	"$@"
}

run_system() { # description command...: acts on the running system; never fatal
	d=$1
	shift
	if [ -n "$ROOT" ] || ! command -v "$1" >/dev/null 2>&1; then return 0; fi
	if [ "$DRY" = 1 ]; then
		say "NOTE would run $d"
		return 0
	fi
	if out=$("$@" 2>&1); then
		if [ -n "$out" ]; then say "NOTE $d: $(printf '%s' "$out" | tr '\n' ' ')"; fi
	else
		say "NOTE $d failed: $(printf '%s' "$out" | tr '\n' ' ')"
	fi
}

remove_home() {
	h=$ROOT$USER_HOME
	if [ -d "$h" ] && [ ! -L "$h" ]; then
		owner=$(stat -c %u "$h")
		if [ "$owner" = "$USER_UID" ]; then
			remove "$h"
		else
			say "NOTE kept the home $USER_HOME: it is owned by UID $owner, not $USER_UID"
		fi
	elif [ -e "$h" ] || [ -L "$h" ]; then
		say "NOTE kept $USER_HOME: not a directory"
	fi
}

set_machine_id() { # empty|uninitialized
	f=$ROOT/etc/machine-id
	if [ "$DRY" = 1 ]; then
		say "WOULD-SET /etc/machine-id $1"
		return 0
	fi
	if [ -L "$f" ]; then rm -f "$f"; fi
	new=0
	if [ ! -e "$f" ]; then new=1; fi
	if [ "$1" = uninitialized ]; then printf 'uninitialized\n' >"$f"; else : >"$f"; fi
	if [ "$new" = 1 ]; then chmod 0444 "$f"; fi
	say "SET /etc/machine-id $1"
}

restore_etc() { # saved-dir names: moves the saved copies back into /etc (one mv)
	d=$ROOT$1
	shift
	if [ "$DRY" = 1 ]; then
		for n in "$@"; do say "WOULD-CHANGE /etc/$n"; done
		return 0
	fi
	n=$#
	while [ "$n" -gt 0 ]; do
		set -- "$@" "$d/$1"
		shift
		n=$((n - 1))
	done
	# A rename keeps each copy's contents, owner, mode and label.
	mv -f -- "$@" "$ROOT/etc/"
	for p in "$@"; do say "CHANGED /etc/${p##*/}"; done
}

empty_file() { # path: truncated; owner and mode stay
	if [ "$DRY" = 1 ]; then
		say "WOULD-CHANGE $1"
		return 0
	fi
	: >"$ROOT$1"
	say "CHANGED $1"
}

# clean_cloud_state removes what `cloud-init clean --logs --configs all`
# removes under /var/lib/cloud (with all: its seed too) and, with it, the
# NIC-naming udev rules (the build NIC's MAC) that cloud-init's ENI
# renderer writes with the ENI file, over whatever was there (cloud-init
# net/eni.py render_network_state, netrules_path; net/renderer.py
# _render_persistent_net): where it rendered, the rules file is
# cloud-init's. One rm for all.
clean_cloud_state() { # keep-seed|all
	keep=$1
	set --
	for p in "$ROOT"/var/lib/cloud/* "$ROOT"/var/lib/cloud/.[!.]*; do
		if [ "$keep" = keep-seed ] && [ "$p" = "$ROOT/var/lib/cloud/seed" ]; then continue; fi
		set -- "$@" "$p"
	done
	if [ -e "$ROOT/etc/network/interfaces.d/50-cloud-init" ] || [ -e "$ROOT/etc/network/interfaces.d/50-cloud-init.cfg" ]; then
		set -- "$@" "$ROOT/etc/udev/rules.d/70-persistent-net.rules"
	fi
	remove "$@"
}

# clean_tmp empties /tmp and /var/tmp, but for the temporary directory
# (removed last).
clean_tmp() {
	set --
	for p in "$ROOT"/tmp/* "$ROOT"/tmp/.[!.]* "$ROOT"/tmp/..?* \
		"$ROOT"/var/tmp/* "$ROOT"/var/tmp/.[!.]* "$ROOT"/var/tmp/..?*; do
		if [ "$p" = "$DIR" ]; then continue; fi
		set -- "$@" "$p"
	done
	remove "$@"
}

# remove_shell_history removes the history files of root and of every
# directory in /home.
remove_shell_history() {
	set --
	for h in "$ROOT/root" "$ROOT"/home/*; do
		if [ ! -d "$h" ] || [ -L "$h" ]; then continue; fi
		for n in .bash_history .zsh_history .sh_history .ash_history .history \
			.lesshst .viminfo .python_history .mysql_history .psql_history \
			.sqlite_history .node_repl_history .rediscli_history .wget-hsts; do
			set -- "$@" "$h/$n"
		done
	done
	remove "$@"
}

# clean_apt_lists removes apt's package lists but its lock and partial/.
clean_apt_lists() {
	set --
	for p in "$ROOT"/var/lib/apt/lists/*; do
		case ${p##*/} in lock | partial) continue ;; esac
		set -- "$@" "$p"
	done
	remove "$@"
}

# run_named runs one of the commands that act on the running system (see
# run_system), by the plan's name for it.
run_named() { # name
	case $1 in
	fstrim) run_system "fstrim -av" fstrim -av ;;
	apt-get-clean) run_system "apt-get clean" apt-get clean ;;
	journal-rotate) run_system "journalctl --rotate" journalctl --rotate ;;
	cloud-clean-hooks)
		if [ -d /etc/cloud/clean.d ]; then
			run_system "run-parts /etc/cloud/clean.d (cloud-init clean's hooks)" run-parts /etc/cloud/clean.d
		fi
		;;
	*) unknown_record "run $1" ;;
	esac
}

# write_identity installs the image's identity document, written whole:
# which build made the image, for every VM made from it (not per-instance
# state, so nothing here or in cloud-init removes it).
write_identity() { # name sha256 path
	if [ "$DRY" = 1 ]; then
		say "WOULD-CHANGE $3"
		return 0
	fi
	f=$ROOT$3
	mkdir -p "${f%/*}"
	chmod 0755 "${f%/*}"
	cp "$DIR/$1" "$f.cloudimg-new"
	chmod 0644 "$f.cloudimg-new"
	mv -f "$f.cloudimg-new" "$f"
	say "CHANGED $3"
	if printf '%s  %s\n' "$2" "$f" | sha256sum -c --status 2>/dev/null; then
		check identity ok "$3 names the image's build"
	else
		check identity fail "$3 differs from the planned contents"
	fi
}

stop_seed_service() {
	run_system "systemctl stop systemd-random-seed.service" systemctl stop systemd-random-seed.service
}

wait_seed_stop() { # the stop of systemd-random-seed started in the background
	if [ -z "$SEED_PID" ]; then
		stop_seed_service
		return 0
	fi
	wait "$SEED_PID" || true
	SEED_PID=
	while IFS= read -r l; do say "$l"; done <"$DIR/random-seed.out"
}

schedule_poweroff() { # seconds
	if [ -n "$ROOT" ]; then return 0; fi
	if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then
		systemd-run --quiet --on-active="$1" --timer-property=AccuracySec=100ms \
			"$(command -v systemctl)" poweroff >/dev/null 2>&1 && return 0
	fi
	nohup setsid sh -c "sleep $1; poweroff" >/dev/null 2>&1 </dev/null &
}

# --------------------------------------------------------------- checks --

has_key() { # file key: a line's first field is key
	awk -F: -v k="$2" '$1 == k { found = 1 } END { exit !found }' "$1"
}

has_member() { # file user field...: user is in one of the comma lists
	f=$1
	u=$2
	shift 2
	awk -F: -v u="$u" -v fields="$*" '
		/^[#+-]/ { next }
		{
			nf = split(fields, fl, " ")
			for (i = 1; i <= nf; i++) {
				n = split($(fl[i]), m, ",")
				for (j = 1; j <= n; j++) {
					gsub(/^[ \t]+|[ \t]+$/, "", m[j])
					if (m[j] == u) found = 1
				}
			}
		}
		END { exit !found }' "$f"
}

verify_keyed() { # name [member fields]: no entry keyed by the user, not a member
	f=$ROOT/etc/$1
	n=$1
	shift
	if [ ! -e "$f" ]; then
		check "$n" ok "/etc/$n does not exist"
	elif has_key "$f" "$USER_NAME"; then
		check "$n" fail "/etc/$n still has an entry named $USER_NAME"
	elif [ $# -gt 0 ] && has_member "$f" "$USER_NAME" "$@"; then
		check "$n" fail "/etc/$n still lists $USER_NAME as a member"
	else
		check "$n" ok "no entry for $USER_NAME"
	fi
}

verify_members() { # name fields: only membership (a group named like the user was kept)
	f=$ROOT/etc/$1
	n=$1
	shift
	if [ ! -e "$f" ]; then
		check "$n" ok "/etc/$n does not exist"
	elif has_member "$f" "$USER_NAME" "$@"; then
		check "$n" fail "/etc/$n still lists $USER_NAME as a member"
	else
		check "$n" ok "$USER_NAME is in no member list (the group $USER_NAME was kept)"
	fi
}

verify_shas() { # sha256sum -c lines on stdin: a failed check per file that differs
	bad=$(sums_failing)
	if [ -z "$bad" ]; then return 0; fi
	while IFS= read -r p; do
		check "content:${p#"$ROOT"}" fail "${p#"$ROOT"} differs from the planned contents"
	done <<CLOUDIMG_BAD
$bad
CLOUDIMG_BAD
}

verify_sudoers() {
	f=$ROOT/etc/sudoers.d/90-cloud-init-users
	if [ -f "$f" ] && awk -v u="$USER_NAME" '
		{ l = $0; sub(/^[ \t]+/, "", l); sub(/[ \t]+$/, "", l)
		  if (tolower(substr(l, 1, 17)) == "# user rules for " && substr(l, 18) == u) found = 1 }
		END { exit !found }' "$f"; then
		check sudoers fail "/etc/sudoers.d/90-cloud-init-users still has the rules for $USER_NAME"
		return 0
	fi
	if [ -z "$ROOT" ] && command -v visudo >/dev/null 2>&1; then
		if out=$(visudo -cq 2>&1); then
			check sudoers ok "no cloud-init rules for $USER_NAME; visudo -c passes"
		else
			check sudoers fail "visudo -c: $(printf '%s' "$out" | tr '\n' ' ')"
		fi
	else
		check sudoers ok "no cloud-init rules for $USER_NAME"
	fi
}

verify_home() {
	if [ -z "$USER_HOME" ]; then
		check home ok "no home to remove"
		return 0
	fi
	h=$ROOT$USER_HOME
	if [ -d "$h" ] && [ ! -L "$h" ] && [ "$(stat -c %u "$h")" = "$USER_UID" ]; then
		check home fail "$USER_HOME still exists"
	elif [ -e "$h" ] || [ -L "$h" ]; then
		check home ok "$USER_HOME exists but is not the user's (kept)"
	else
		check home ok "$USER_HOME is gone"
	fi
}

verify_machine_id() { # empty|uninitialized
	f=$ROOT/etc/machine-id
	d=$ROOT/var/lib/dbus/machine-id
	if [ -f "$d" ] && [ ! -L "$d" ]; then
		check machine-id fail "/var/lib/dbus/machine-id is still a regular file"
	elif [ "$1" = empty ] && [ -f "$f" ] && [ ! -s "$f" ]; then
		check machine-id ok "/etc/machine-id is empty"
	elif [ "$1" = uninitialized ] && [ -f "$f" ] && [ "$(cat "$f")" = uninitialized ]; then
		check machine-id ok "/etc/machine-id is uninitialized"
	else
		check machine-id fail "/etc/machine-id is not $1"
	fi
}

verify_cloud_dir() { # keep-seed (the seed may stay) | all
	left=
	for p in "$ROOT"/var/lib/cloud/* "$ROOT"/var/lib/cloud/.[!.]*; do
		if [ ! -e "$p" ] && [ ! -L "$p" ]; then continue; fi
		if [ "$1" = keep-seed ] && [ "$p" = "$ROOT/var/lib/cloud/seed" ]; then continue; fi
		left="$left ${p##*/}"
	done
	if [ -n "$left" ]; then
		check var-lib-cloud fail "/var/lib/cloud still holds:$left"
	elif [ "$1" = keep-seed ] && [ -d "$ROOT/var/lib/cloud/seed" ]; then
		check var-lib-cloud ok "only seed/ is left"
	else
		check var-lib-cloud ok "empty"
	fi
}

# verify_statoverride: every owner and group of dpkg's stat overrides must
# still exist, or dpkg stops every package operation ("unknown system
# user"). The check runs after the user is gone, so the way out is in the
# template, before the reset. One awk reads the database (the format of
# `dpkg-statoverride --list`: owner group mode path), passwd and group.
verify_statoverride() {
	admin=$ROOT/var/lib/dpkg
	if ! command -v dpkg >/dev/null 2>&1 || [ ! -d "$admin" ]; then
		check dpkg-statoverride ok "no dpkg"
		return 0
	fi
	db=$admin/statoverride
	if [ ! -s "$db" ]; then
		check dpkg-statoverride ok "no stat overrides"
		return 0
	fi
	if ! bad=$(awk -v pw="$ROOT/etc/passwd" -v gr="$ROOT/etc/group" -v u="$USER_NAME" '
		FILENAME == pw { sub(/:.*/, ""); users[$0] = 1; next }
		FILENAME == gr { sub(/:.*/, ""); groups[$0] = 1; next }
		NF >= 4 {
			path = $0
			sub(/^[ \t]*[^ \t]+[ \t]+[^ \t]+[ \t]+[^ \t]+[ \t]+/, "", path)
			why = ""
			if ($1 !~ /^#/ && !($1 in users))
				why = "owner " $1 ($1 == u ? ": the build user, removed by this reset" : ": no such user")
			if ($2 !~ /^#/ && !($2 in groups))
				why = why (why == "" ? "" : "; ") "group " $2 ($2 == u ? ": the build user\047s group, removed by this reset" : ": no such group")
			if (why == "") next
			n++
			list = list (n > 1 ? ", " : "") path " (" why ")"
			if (n == 1) { first = path; mode = $3 }
		}
		END {
			if (n == 0) exit 0
			p = first
			each = ""
			if (n > 1) { p = "<path>"; mode = "<mode>"; each = " for each path" }
			printf "unknown owner or group: %s. dpkg refuses every package install and upgrade while an override names a missing account. In a provisioner before cloudimg-cloudinit-reset, run `sudo dpkg-statoverride --remove %s`%s and chown %s to an account the image keeps, or re-add the override for such an account (`sudo dpkg-statoverride --remove %s && sudo dpkg-statoverride --update --add <user> <group> %s %s`)", list, p, each, (n == 1 ? p : "it"), p, mode, p
		}' "$ROOT/etc/passwd" "$ROOT/etc/group" "$db" 2>"$DIR/statoverride.err"); then
		check dpkg-statoverride fail "reading ${db#"$ROOT"}, /etc/passwd and /etc/group: $(tr '\n' ' ' <"$DIR/statoverride.err")"
	elif [ -n "$bad" ]; then
		check dpkg-statoverride fail "$bad"
	else
		check dpkg-statoverride ok "every owner and group resolves"
	fi
}

verify_dpkg_audit() {
	admin=$ROOT/var/lib/dpkg
	if ! command -v dpkg >/dev/null 2>&1 || [ ! -f "$admin/status" ]; then
		check dpkg-audit ok "no dpkg"
		return 0
	fi
	if out=$(dpkg --admindir="$admin" --audit 2>&1) && [ -z "$out" ]; then
		check dpkg-audit ok "dpkg --audit is clean"
	else
		check dpkg-audit fail "dpkg --audit: $(printf '%s' "$out" | tr '\n' ' ' | cut -c1-500)"
	fi
}

# find_traces lists into $DIR/traces the files that name, as a word in any
# case, one of the build's host names or its NICs' MAC addresses: one grep
# over /etc (and with addresses the network state in NETWORK_STATE), whose
# status is the job's. Symbolic links are not followed. With keep-host-keys
# the kept SSH host keys are left out: remove_ssh_host_keys is off, and
# their public halves end in the comment root@<build host>, which nothing
# reads.
find_traces() { # all|keep-host-keys
	keep=$1
	set --
	if [ "$keep" = keep-host-keys ]; then set -- --exclude='ssh_host_*_key.pub'; fi
	for n in $BUILD_HOSTNAMES $BUILD_MACS; do set -- "$@" -e "$n"; done
	set -- "$@" -- "$ROOT/etc"
	for d in $NETWORK_STATE; do set -- "$@" "$ROOT$d"; done
	grep -rlwiF "$@" >"$DIR/traces" 2>"$DIR/traces.err"
}

# wait_traces waits for the search (once) and sets TRACES_RC, TRACES_HOST
# and TRACES_MAC: the files with the build's host names (only under /etc)
# and those with its MAC addresses.
wait_traces() {
	if [ -z "$TRACES_PID" ]; then return 0; fi
	wait "$TRACES_PID" || TRACES_RC=$?
	TRACES_PID=
	if [ -z "$BUILD_HOSTNAMES" ] || [ -z "$BUILD_MACS" ]; then
		TRACES_HOST=$DIR/traces
		TRACES_MAC=$DIR/traces
		return 0
	fi
	# The search looked for both: which file names which, with one grep
	# each over what it found (nothing to do when it found nothing).
	TRACES_HOST=$DIR/traces.host
	TRACES_MAC=$DIR/traces.mac
	: >"$TRACES_HOST"
	: >"$TRACES_MAC"
	if [ ! -s "$DIR/traces" ]; then return 0; fi
	set --
	for n in $BUILD_MACS; do set -- "$@" -e "$n"; done
	set -- "$@" --
	while IFS= read -r p; do set -- "$@" "$p"; done <"$DIR/traces"
	grep -lwiF "$@" >"$TRACES_MAC" 2>/dev/null || true
	set --
	for n in $BUILD_HOSTNAMES; do set -- "$@" -e "$n"; done
	set -- "$@" --
	n=$#
	while IFS= read -r p; do
		case $p in "$ROOT"/etc/*) set -- "$@" "$p" ;; esac
	done <"$DIR/traces"
	if [ $# -gt "$n" ]; then grep -lwiF "$@" >"$TRACES_HOST" 2>/dev/null || true; fi
}

# first_files sets FILES to up to 20 of the paths listed in a file, each
# after a blank, without $ROOT.
first_files() { # file
	FILES=
	count=0
	if [ ! -f "$1" ]; then return 0; fi
	while IFS= read -r p; do
		if [ "$count" -ge 20 ]; then
			FILES="$FILES ..."
			break
		fi
		FILES="$FILES ${p#"$ROOT"}"
		count=$((count + 1))
	done <"$1"
}

verify_build_hostname() { # names summary [paths the source image did not have]
	names=$1
	how=$2
	shift 2
	for p in "$@"; do
		if [ -e "$ROOT$p" ] || [ -L "$ROOT$p" ]; then
			check build-hostname fail "$p exists, but the source image had none ($how)"
			return 0
		fi
	done
	if [ -z "$names" ]; then
		check build-hostname ok "no build host name to look for ($how)"
		return 0
	fi
	wait_traces
	first_files "$TRACES_HOST"
	if [ -n "$FILES" ]; then
		check build-hostname fail "the build host name $names is still in:$FILES ($how)"
	elif [ "$TRACES_RC" -gt 1 ]; then
		check build-hostname fail "the search for $names under /etc failed (status $TRACES_RC): $(tr '\n' ' ' <"$DIR/traces.err" 2>/dev/null)"
	else
		check build-hostname ok "no file under /etc names $names ($how)"
	fi
}

# verify_network: configuration that names the build VM's NIC by its MAC
# address (a netplan, networkd or NetworkManager file a provisioner copied
# from cloud-init's, `netplan set` output, udev rules) does not match a
# clone's NIC, which has another address.
verify_network() { # "MAC address(es) …" or "" for none
	if [ -z "$1" ]; then
		check network ok "no NIC MAC address to look for"
		return 0
	fi
	wait_traces
	where=/etc
	for d in $NETWORK_STATE; do where="$where, $d"; done
	first_files "$TRACES_MAC"
	if [ -n "$FILES" ]; then
		check network fail "the build VM's $1 is still in:$FILES (a clone's NIC has another address: configuration that matches this one does not apply to it)"
	elif [ "$TRACES_RC" -gt 1 ]; then
		check network fail "the search for the build VM's $1 under $where failed (status $TRACES_RC): $(tr '\n' ' ' <"$DIR/traces.err" 2>/dev/null)"
	else
		check network ok "no file under $where names the build VM's $1"
	fi
}

# find_owned_files lists into $DIR/owned files with the user's UID or the
# removed GID. It starts before the removals: the home that is removed is
# not searched, and note_owned_files drops what is gone by then.
find_owned_files() {
	if [ "$USER_UID" -lt 0 ]; then return 0; fi
	set -- -uid "$USER_UID"
	if [ "$USER_GID" -ge 0 ]; then set -- "$@" -o -gid "$USER_GID"; fi
	home=$DIR
	if [ -n "$USER_HOME" ] && [ -d "$ROOT$USER_HOME" ] && [ ! -L "$ROOT$USER_HOME" ] &&
		[ "$(stat -c %u "$ROOT$USER_HOME")" = "$USER_UID" ]; then
		home=$ROOT$USER_HOME
	fi
	find "$ROOT/" -xdev \( -path "$DIR" -prune \) -o \( -path "$home" -prune \) -o \( "$@" \) -print 2>/dev/null | head -n 40 >"$DIR/owned.tmp" || true
	mv "$DIR/owned.tmp" "$DIR/owned"
}

note_owned_files() { # files left behind that the next account with these IDs would own
	if [ "$USER_UID" -lt 0 ]; then return 0; fi
	wait "$OWNED_PID" || true
	OWNED_PID=
	if [ ! -f "$DIR/owned" ]; then
		say "NOTE the search for files still owned by UID $USER_UID did not finish"
		return 0
	fi
	ids="UID $USER_UID"
	if [ "$USER_GID" -ge 0 ]; then ids="UID $USER_UID or GID $USER_GID"; fi
	owned=
	count=0
	while IFS= read -r p; do
		if [ "$count" -ge 20 ]; then break; fi
		if [ ! -e "$p" ] && [ ! -L "$p" ]; then continue; fi
		owned="$owned ${p#"$ROOT"}"
		count=$((count + 1))
	done <"$DIR/owned"
	owned=${owned# }
	if [ -n "$owned" ]; then
		say "NOTE files still owned by $ids (an account created later with the same IDs would own them): $owned"
	fi
}

