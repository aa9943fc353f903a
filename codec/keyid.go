package codec

import (
	"encoding/hex"
	"fmt"
)

// MessageKeyID returns the key id a sealed message names in its header, as
// 16 lower-case hex digits like ClientKey.ID, without opening it. The id is
// not authenticated: anyone can write any id. It lets a client that cannot
// open a message say which key it would need. Errors wrap ErrMalformed or
// ErrVersion.
func MessageKeyID(text string) (string, error) {
	frame, err := dearmour(text)
	if err != nil {
		return "", fmt.Errorf("read key id: %w", err)
	}
	if len(frame) == 0 {
		return "", fmt.Errorf("read key id: %w: empty frame", ErrMalformed)
	}
	if v := frame[0]; v != Version1 {
		return "", fmt.Errorf("read key id: %w: format version %d (this build reads %d)", ErrVersion, v, Version1)
	}
	if len(frame) < headerSize {
		return "", fmt.Errorf("read key id: %w: frame of %d bytes is shorter than its %d-byte header", ErrMalformed, len(frame), headerSize)
	}
	return hex.EncodeToString(frame[1 : 1+keyIDSize]), nil
}
