package config

// Preset is a mail provider's settings, for `ipsync init`.
type Preset struct {
	// Key is the name given on the command line, e.g. "gmail".
	Key string
	// Name is the provider's name for people.
	Name string
	// SMTP and IMAP are the provider's endpoints; empty for "other".
	SMTP Server
	IMAP IMAP
	// Note says what the account needs (app password, IMAP on, limits).
	Note string
}

// Presets are the mail providers `ipsync init` knows, in menu order; the
// last, "other", asks for the servers. docs/deploy.md has more per-provider
// notes.
var Presets = []Preset{
	{Key: "gmail", Name: "Gmail",
		SMTP: Server{Host: "smtp.gmail.com", Port: 465, TLS: "implicit"},
		IMAP: IMAP{Host: "imap.gmail.com", Port: 993, TLS: "implicit"},
		Note: "needs an app password (Google Account → Security → 2-Step Verification → App passwords); Gmail allows 15 IMAP connections per account, so give each PC its own mailbox past about ten PCs"},
	{Key: "google-workspace", Name: "Google Workspace",
		SMTP: Server{Host: "smtp.gmail.com", Port: 465, TLS: "implicit"},
		IMAP: IMAP{Host: "imap.gmail.com", Port: 993, TLS: "implicit"},
		Note: "the administrator must allow IMAP and app passwords (Admin console → Security); 15 IMAP connections per mailbox"},
	{Key: "outlook", Name: "Outlook.com / Microsoft 365",
		SMTP: Server{Host: "smtp.office365.com", Port: 587, TLS: "starttls"},
		IMAP: IMAP{Host: "outlook.office365.com", Port: 993, TLS: "implicit"},
		Note: "Microsoft no longer accepts passwords for IMAP and SMTP on most accounts (OAuth2 only, see docs/oauth2.md); 20 IMAP connections per mailbox"},
	{Key: "fastmail", Name: "Fastmail",
		SMTP: Server{Host: "smtp.fastmail.com", Port: 465, TLS: "implicit"},
		IMAP: IMAP{Host: "imap.fastmail.com", Port: 993, TLS: "implicit"},
		Note: "needs an app password with IMAP and SMTP access (Settings → Privacy & Security → App passwords)"},
	{Key: "icloud", Name: "iCloud Mail",
		SMTP: Server{Host: "smtp.mail.me.com", Port: 587, TLS: "starttls"},
		IMAP: IMAP{Host: "imap.mail.me.com", Port: 993, TLS: "implicit"},
		Note: "needs an app-specific password (account.apple.com → Sign-In and Security → App-Specific Passwords)"},
	{Key: "yahoo", Name: "Yahoo Mail",
		SMTP: Server{Host: "smtp.mail.yahoo.com", Port: 465, TLS: "implicit"},
		IMAP: IMAP{Host: "imap.mail.yahoo.com", Port: 993, TLS: "implicit"},
		Note: "needs an app password (Account Security → Generate app password)"},
	{Key: "other", Name: "another provider or your own mail server",
		Note: "give the SMTP and IMAP servers; implicit TLS on 465 and 993 is the default"},
}

// PresetByKey returns the preset named key.
func PresetByKey(key string) (Preset, bool) {
	for _, p := range Presets {
		if p.Key == key {
			return p, true
		}
	}
	return Preset{}, false
}
