#!/bin/sh
# A stand-in daemon for the packaging tests: records the environment envdir
# gave it, then idles. With a file "stubborn" in its service directory it
# ignores SIGTERM: a service that will not go down.
# usage (from a daemontools run script): record-env.sh NAME RECORDS_DIR
name=$1 records=$2
[ -e ./stubborn ] && trap '' TERM
env | sort >"$records/.$name.env" && mv "$records/.$name.env" "$records/$name.env"
exec sleep 1000000
