// Package codec holds ipsync's message formats and keys.
//
// Two formats exist:
//
//   - sealed (the default, format version 1): the payload is encrypted with
//     XChaCha20-Poly1305 under a 32-byte secret shared by the server and its
//     clients, and signed with the server's Ed25519 key, so the mailbox
//     provider cannot read it and a client cannot forge it. The armoured text
//     survives mail transport (CRLF, re-wrapping, quoted-printable and base64
//     transfer encodings). docs/protocol.md specifies it byte by byte.
//   - legacy: the original tool's obfuscated IPv4 text. It is NOT encryption
//     and has no authenticity: anyone who sees two messages can read it, and
//     anyone can forge one. It exists only so old deployments can migrate.
//
// Keys: GenerateServerKey makes a ServerKey (the shared secret and the
// Ed25519 signing key); its ClientKey (the secret and the public key) is what
// clients hold. Both have a text form (Text, ParseServerKey,
// ParseServerKeyFile, ParseClientKey, ParseClientKeys) and a redacted String
// that is safe to log. KindOf tells the two kinds apart without parsing; a
// key of the wrong kind is refused with a *KeyKindError.
//
// Errors that callers branch on are ErrMalformed, ErrVersion, ErrWrongKey and
// ErrBadSignature; test them with errors.Is.
//
// The package is pure: no I/O and no clock. The caller sets Payload.IssuedAt
// and passes a random source where one is needed.
package codec
