#!/bin/bash
# notqmail's own queue, checked and repaired by queue-fix --classic, then
# delivered by notqmail's own qmail-send. Run by tests/fix_notqmail.rs as
#   classic.sh SRC WORK QUEUE_FIX
# SRC: a notqmail source tree (copied, never changed); WORK: a scratch
# directory (notqmail is installed in WORK/qmail). Runs itself again in a
# private mount namespace where /etc/passwd and /etc/group also hold
# classic qmail's accounts (conf-users, conf-groups), so the host's are
# untouched. Prints KEY=VALUE lines for the test; a failed step exits
# non-zero.
set -euo pipefail
src=$1 work=$2 qf=$3
home=$work/qmail
queue=$home/queue

if [ -z "${CLASSIC_IN_NS:-}" ]; then
  mkdir -p "$work/etc" "$work/build"
  cp /etc/passwd /etc/group "$work/etc/"
  # Ids above anything the host uses.
  base=$(( $(cut -d: -f3 /etc/passwd /etc/group | sort -n | awk '$1 < 60000' | tail -1) + 1000 ))
  {
    echo "qmail:x:$base:"
    echo "nofiles:x:$((base + 1)):"
  } >> "$work/etc/group"
  n=0
  for u in alias qmaild qmaill qmailp qmailq qmailr qmails; do
    n=$((n + 1))
    case $u in qmailq|qmailr|qmails) g=$base ;; *) g=$((base + 1)) ;; esac
    h=$home; [ $u = alias ] && h=$home/alias
    echo "$u:x:$((base + n)):$g::$h:/bin/false" >> "$work/etc/passwd"
  done
  export CLASSIC_IN_NS=1
  exec unshare -m --propagation private bash -c '
    mount --bind "$1/etc/passwd" /etc/passwd
    mount --bind "$1/etc/group" /etc/group
    shift
    exec bash "$@"' ns "$work" "$0" "$@"
fi

# Build and install as INSTALL.md says: conf-qmail, make setup check,
# config-fast.
cp -R "$src/." "$work/build/"
cd "$work/build"
echo "$home" > conf-qmail
make it man > "$work/build.log" 2>&1
make setup check >> "$work/build.log" 2>&1
./config-fast mail.example.test >> "$work/build.log" 2>&1
# Every local address ends in alias's Maildir (INSTALL.alias.md,
# INSTALL.maildir.md).
mkdir -p "$home/alias/Maildir/new" "$home/alias/Maildir/cur" "$home/alias/Maildir/tmp"
chown -R alias "$home/alias/Maildir"
echo './Maildir/' > "$home/alias/.qmail-default"

# 50 messages from three users (root, nobody, alias): qmail-queue is
# setuid qmailq, not setgid, so their files keep root's, nogroup's and
# nofiles' group.
nobody=$(id -u nobody) nogroup=$(id -g nobody)
for i in $(seq 1 50); do
  case $((i % 3)) in
    0) as=() ;;
    1) as=(setpriv --reuid="$nobody" --regid="$nogroup" --clear-groups) ;;
    2) as=(setpriv --reuid="$(id -u alias)" --regid="$(id -g alias)" --clear-groups) ;;
  esac
  printf 'To: test-%s@mail.example.test\nSubject: %s\n\nbody %s\n' "$i" "$i" "$i" |
    "${as[@]}" "$home/bin/qmail-inject" "test-$i@mail.example.test"
done
echo "GROUPS=$(find "$queue/mess" -type f -printf '%g\n' | sort -u | tr '\n' ' ')"

listing() { find "$queue" -printf '%p %y %u %g %m %s %i\n' | sort; }
before=$(listing)
set +e
"$qf" --classic -N "$queue" > "$work/clean.out" 2>&1
echo "CLEAN_CHECK=$?"
"$qf" --classic -v "$queue" > "$work/clean-repair.out" 2>&1
echo "CLEAN_REPAIR=$? $(wc -c < "$work/clean-repair.out")"
set -e
[ "$before" = "$(listing)" ] && echo "UNTOUCHED=yes" || echo "UNTOUCHED=no"

# Damage (bash arithmetic on the names qmail-queue gave).
mess=($(cd "$queue/mess" && find . -type f | sort | sed 's|^\./||'))
k=0
for m in "${mess[@]}"; do
  sub=${m%/*} id=${m#*/}
  case $((k % 10)) in
    0) # misnamed: another number, in that number's subdirectory
       w=$((id + 1000003))
       mv "$queue/mess/$m" "$queue/mess/$((w % 23))/$w"
       mv "$queue/intd/$id" "$queue/intd/$w"
       mv "$queue/todo/$id" "$queue/todo/$w" ;;
    1) # misplaced, and a wrong mode (issue 21 item 6)
       to=$queue/mess/$(((sub + 1) % 23))/$id
       mv "$queue/mess/$m" "$to"; chmod 600 "$to" ;;
    2) # todo/intd split as IndiMail's BIGTODO=1 writes them
       for d in todo intd; do
         mkdir -p "$queue/$d/$sub"; mv "$queue/$d/$id" "$queue/$d/$sub/$id"
       done ;;
    3) chown nobody "$queue/mess/$m" ;;
    4) chmod 666 "$queue/todo/$id" ;;
  esac
  k=$((k + 1))
done
echo 'Fstray' > "$queue/todo/999999937"
echo 'Fstray' > "$queue/info/0/999999958"
chmod 755 "$queue/intd"

set +e
"$qf" --classic -N "$queue" > "$work/damaged.out" 2>&1
echo "DAMAGED_CHECK=$?"
"$qf" --classic "$queue" > "$work/repair.out" 2>&1
echo "REPAIR=$?"
"$qf" --classic -N "$queue" > "$work/after.out" 2>&1
echo "AFTER_CHECK=$? $(wc -c < "$work/after.out")"
set -e

# notqmail's qmail-send, as its rc starts it, until every message is
# delivered (or 60 s).
cd "$home"
env - PATH="$home/bin:/usr/bin:/bin" setsid "$home/bin/qmail-start" ./Maildir/ cat \
  > "$work/send.log" 2>&1 &
send=$!
for _ in $(seq 1 120); do
  [ "$(ls "$home/alias/Maildir/new" | wc -l)" -ge 50 ] && break
  sleep 0.5
done
sleep 1
kill -TERM -- "-$send" 2>/dev/null || true
wait "$send" 2>/dev/null || true
echo "DELIVERED=$(ls "$home/alias/Maildir/new" | wc -l)"
# Each message once, none a bounce.
echo "SUBJECTS=$(grep -h '^Subject: ' "$home/alias/Maildir/new/"* | LC_ALL=C sort -u | tr '\n' ,)"
echo "SEND_WARNINGS=$(grep -c 'warning' "$work/send.log" || true)"
echo "LEFT_IN_TODO=$(ls "$queue/todo" | wc -l)"
