#!/usr/bin/env bash
# man.sh IPSYNC VERSION: prints the manual page ipsync(1), made from the
# program's own help (`ipsync help` and each verb's --help), so that the two
# never disagree. IPSYNC must run on this machine.
set -euo pipefail
bin=$1 version=$2

# The help names the default config path of whoever runs it: show the
# user's one.
help() { HOME=/HOME XDG_CONFIG_HOME='' "$bin" "$@" | sed 's|/HOME/.config|~/.config|g'; }
# roff: backslashes escaped, and a line that starts with . or ' kept as text.
esc() { sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"; }

date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%d)
cat <<HEAD
.TH IPSYNC 1 "$date" "ipsync $version" "User Commands"
.SH NAME
ipsync \- tell staff PCs a server's changing public IP address through a mailbox
.SH SYNOPSIS
.B ipsync
.I verb
.RI [ flags ]
.SH DESCRIPTION
.nf
HEAD
help help | esc
echo ".fi"
verbs=$(help help | sed -n 's/^  ipsync \([a-z]*\) .*/\1/p' | sort -u)
echo ".SH VERBS"
for v in $verbs; do
	echo ".SS $v"
	echo ".nf"
	help "$v" --help | esc
	echo ".fi"
done
cat <<'TAIL'
.SH FILES
.TP
.I ~/.config/ipsync/config.yaml
The default config file of the user who runs ipsync.
.TP
.I /etc/ipsync/config.yaml
The config of the server service ipsync-server.service (Debian package).
.TP
.I /var/lib/ipsync
The server service's state directory (set state_dir: /var/lib/ipsync).
.SH SEE ALSO
.BR systemctl (1),
/usr/share/doc/ipsync/README.md,
/usr/share/doc/ipsync/deploy.md,
/usr/share/doc/ipsync/operations.md,
/usr/share/doc/ipsync/config.example.yaml
TAIL
