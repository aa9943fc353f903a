package icons

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/png"
	"runtime"
	"slices"
	"testing"
)

func wantNames() []string {
	var names []string
	for _, role := range []string{"client", "server"} {
		for _, state := range []string{"unknown", "current", "stale", "unreachable", "error", "working", "paused"} {
			if role == "client" && state == "paused" {
				continue
			}
			names = append(names, role+"-"+state)
		}
	}
	slices.Sort(names)
	return names
}

func TestNames(t *testing.T) {
	t.Parallel()
	if got, want := Names(), wantNames(); !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
}

func TestPNG(t *testing.T) {
	t.Parallel()
	for _, name := range wantNames() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := PNG(name)
			if b == nil {
				t.Fatalf("PNG(%q) = nil", name)
			}
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("png.Decode(PNG(%q)) error = %v", name, err)
			}
			if got, want := img.Bounds(), image.Rect(0, 0, 64, 64); got != want {
				t.Errorf("PNG(%q) bounds = %v, want %v", name, got, want)
			}
			checkTransparentCorner(t, img)
		})
	}
}

// checkTransparentCorner makes sure the badge does not fill its square.
func checkTransparentCorner(t *testing.T, img image.Image) {
	t.Helper()
	if _, _, _, a := img.At(0, 0).RGBA(); a != 0 {
		t.Errorf("corner alpha = %d, want 0", a)
	}
	b := img.Bounds()
	if _, _, _, a := img.At(b.Dx()/2, b.Dy()/2).RGBA(); a != 0xffff {
		t.Errorf("centre alpha = %d, want opaque", a)
	}
}

func TestICO(t *testing.T) {
	t.Parallel()
	le := binary.LittleEndian
	for _, name := range wantNames() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := ICO(name)
			if len(b) < 6 {
				t.Fatalf("len(ICO(%q)) = %d, want a header", name, len(b))
			}
			if got := le.Uint16(b[0:]); got != 0 {
				t.Errorf("reserved = %d, want 0", got)
			}
			if got := le.Uint16(b[2:]); got != 1 {
				t.Errorf("type = %d, want 1 (icon)", got)
			}
			n := int(le.Uint16(b[4:]))
			var sizes []int
			for i := range n {
				e := b[6+16*i : 6+16*i+16]
				w, h := int(e[0]), int(e[1])
				if w != h {
					t.Errorf("entry %d is %d×%d, want square", i, w, h)
				}
				if bpp := le.Uint16(e[6:]); bpp != 32 {
					t.Errorf("entry %d bits per pixel = %d, want 32", i, bpp)
				}
				size, off := int(le.Uint32(e[8:])), int(le.Uint32(e[12:]))
				if off+size > len(b) {
					t.Fatalf("entry %d data [%d, %d) beyond file length %d", i, off, off+size, len(b))
				}
				dib := b[off : off+size]
				if got := le.Uint32(dib[0:]); got != 40 {
					t.Errorf("entry %d header size = %d, want 40 (BITMAPINFOHEADER)", i, got)
				}
				if got := int(le.Uint32(dib[4:])); got != w {
					t.Errorf("entry %d DIB width = %d, want %d", i, got, w)
				}
				if got := int(le.Uint32(dib[8:])); got != 2*h {
					t.Errorf("entry %d DIB height = %d, want %d (image and mask)", i, got, 2*h)
				}
				mask := ((w + 31) / 32) * 4 * h
				if got, want := size, 40+w*h*4+mask; got != want {
					t.Errorf("entry %d size = %d, want %d", i, got, want)
				}
				// top-left pixel is the last row's first pixel (bottom-up)
				if a := dib[40+(h-1)*w*4+3]; a != 0 {
					t.Errorf("entry %d corner alpha = %d, want 0", i, a)
				}
				sizes = append(sizes, w)
			}
			if want := []int{16, 24, 32, 48}; !slices.Equal(sizes, want) {
				t.Errorf("ICO(%q) sizes = %v, want %v", name, sizes, want)
			}
		})
	}
}

func TestFor(t *testing.T) {
	t.Parallel()
	want := PNG("client-current")
	if runtime.GOOS == "windows" {
		want = ICO("client-current")
	}
	if got := For("client-current"); !bytes.Equal(got, want) {
		t.Errorf("For(%q) is not the %s icon", "client-current", runtime.GOOS)
	}
	if got := For("client-nonsense"); got != nil {
		t.Errorf("For(%q) = %d bytes, want nil", "client-nonsense", len(got))
	}
}
