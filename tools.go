//go:build tools

package main

import (
	_ "fyne.io/systray"
	_ "github.com/atotto/clipboard"
	_ "github.com/cenkalti/backoff/v5"
	_ "github.com/emersion/go-imap/v2"
	_ "github.com/emersion/go-imap/v2/imapclient"
	_ "github.com/emersion/go-imap/v2/imapserver"
	_ "github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	_ "github.com/emersion/go-message/mail"
	_ "github.com/emersion/go-sasl"
	_ "github.com/emersion/go-smtp"
	_ "github.com/gen2brain/beeep"
	_ "github.com/godbus/dbus/v5"
	_ "github.com/miekg/dns"
	_ "github.com/wneessen/go-mail"
	_ "github.com/zalando/go-keyring"
	_ "golang.org/x/crypto/chacha20poly1305"
	_ "golang.org/x/sys/unix"
	_ "gopkg.in/yaml.v3"
)
