// Command gen draws the ipsync tray icons and writes them as PNG (png/) and
// ICO (ico/) files next to the icons package. Run it with `go generate` in
// the icons directory.
//
// Every icon is a coloured badge with a white glyph. The glyph says what the
// state is (check mark, clock, cross, exclamation mark, question mark,
// circular arrows, pause bars), so the states differ by shape and not only by
// colour. The client badge is a rounded square, the server badge a circle.
//
// Each size is drawn on its own (not scaled from a bigger image): shapes are
// sampled 8×8 times per pixel for anti-aliasing, and straight vertical strokes
// are snapped to the pixel grid so they stay sharp at 16 px.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log"
	"math"
	"os"
	"path/filepath"
)

// pngSize is the edge of the PNG icons (Linux StatusNotifierItem, macOS,
// notifications). Hosts scale it down by whole factors to 32 and 16 px.
const pngSize = 64

// icoSizes are the images stored in each Windows ICO file.
var icoSizes = []int{16, 24, 32, 48}

// supersample is the number of samples per pixel along each axis.
const supersample = 8

// state describes the look of one state.
type state struct {
	name  string
	fill  color.NRGBA // badge colour
	glyph func(s float64) shape
}

var states = []state{
	{"unknown", rgb(0x61, 0x61, 0x61), glyphQuestion},
	{"current", rgb(0x2e, 0x7d, 0x32), glyphCheck},
	{"stale", rgb(0xb2, 0x6a, 0x00), glyphClock},
	{"unreachable", rgb(0xd8, 0x43, 0x15), glyphCross},
	{"error", rgb(0xc6, 0x28, 0x28), glyphExclamation},
	{"working", rgb(0x15, 0x65, 0xc0), glyphArrows},
	{"paused", rgb(0x54, 0x6e, 0x7a), glyphPause},
}

// roles are the badge shapes.
var roles = []struct {
	name string
	base func(s float64) shape
}{
	{"client", baseRoundedSquare},
	{"server", baseCircle},
}

func main() {
	out := flag.String("out", ".", "directory that receives png/ and ico/")
	flag.Parse()
	for _, dir := range []string{"png", "ico"} {
		if err := os.MkdirAll(filepath.Join(*out, dir), 0o755); err != nil {
			log.Fatal(err)
		}
	}
	for _, r := range roles {
		for _, st := range states {
			if st.name == "paused" && r.name == "client" {
				continue // only the server can be paused
			}
			name := r.name + "-" + st.name
			var buf bytes.Buffer
			if err := png.Encode(&buf, render(pngSize, r.base, st)); err != nil {
				log.Fatal(err)
			}
			write(filepath.Join(*out, "png", name+".png"), buf.Bytes())
			var imgs []*image.NRGBA
			for _, size := range icoSizes {
				imgs = append(imgs, render(size, r.base, st))
			}
			write(filepath.Join(*out, "ico", name+".ico"), encodeICO(imgs))
		}
	}
}

func write(path string, b []byte) {
	if err := os.WriteFile(path, b, 0o644); err != nil {
		log.Fatal(err)
	}
}

func rgb(r, g, b uint8) color.NRGBA { return color.NRGBA{r, g, b, 0xff} }

// shape reports whether a point (in pixels, y down) is inside.
type shape func(x, y float64) bool

func union(shapes ...shape) shape {
	return func(x, y float64) bool {
		for _, s := range shapes {
			if s(x, y) {
				return true
			}
		}
		return false
	}
}

func disk(cx, cy, r float64) shape {
	return func(x, y float64) bool { return math.Hypot(x-cx, y-cy) <= r }
}

// segment is a line from (ax, ay) to (bx, by) with round caps, w wide.
func segment(ax, ay, bx, by, w float64) shape {
	return func(x, y float64) bool { return segDist(x, y, ax, ay, bx, by) <= w/2 }
}

func segDist(x, y, ax, ay, bx, by float64) float64 {
	dx, dy := bx-ax, by-ay
	t := 0.0
	if l := dx*dx + dy*dy; l > 0 {
		t = math.Max(0, math.Min(1, ((x-ax)*dx+(y-ay)*dy)/l))
	}
	return math.Hypot(x-(ax+t*dx), y-(ay+t*dy))
}

// polyline joins the points with round-capped strokes w wide.
func polyline(w float64, pts ...[2]float64) shape {
	return func(x, y float64) bool {
		for i := 1; i < len(pts); i++ {
			if segDist(x, y, pts[i-1][0], pts[i-1][1], pts[i][0], pts[i][1]) <= w/2 {
				return true
			}
		}
		return false
	}
}

// arcPoints samples a circular arc; angles are in degrees, 0 = right,
// 90 = down (screen coordinates).
func arcPoints(cx, cy, r, from, to float64) [][2]float64 {
	const n = 48
	pts := make([][2]float64, 0, n+1)
	for i := 0; i <= n; i++ {
		a := (from + (to-from)*float64(i)/n) * math.Pi / 180
		pts = append(pts, [2]float64{cx + r*math.Cos(a), cy + r*math.Sin(a)})
	}
	return pts
}

func triangle(a, b, c [2]float64) shape {
	side := func(p, q [2]float64, x, y float64) float64 {
		return (q[0]-p[0])*(y-p[1]) - (q[1]-p[1])*(x-p[0])
	}
	return func(x, y float64) bool {
		d1, d2, d3 := side(a, b, x, y), side(b, c, x, y), side(c, a, x, y)
		neg := d1 < 0 || d2 < 0 || d3 < 0
		pos := d1 > 0 || d2 > 0 || d3 > 0
		return !(neg && pos)
	}
}

// roundedRect is the rectangle [x0,x1]×[y0,y1] with corner radius r.
func roundedRect(x0, y0, x1, y1, r float64) shape {
	return func(x, y float64) bool {
		cx, cy := (x0+x1)/2, (y0+y1)/2
		hx, hy := (x1-x0)/2-r, (y1-y0)/2-r
		qx, qy := math.Abs(x-cx)-hx, math.Abs(y-cy)-hy
		out := math.Hypot(math.Max(qx, 0), math.Max(qy, 0))
		return out+math.Min(math.Max(qx, qy), 0) <= r
	}
}

// stroke returns a stroke width of w (fraction of the size s) rounded to
// whole pixels, at least minPx.
func stroke(s, w, minPx float64) float64 {
	return math.Max(minPx, math.Round(w*s))
}

// snap centres a stroke of whole-pixel width w near c so that its edges fall
// on pixel boundaries.
func snap(c, w float64) float64 {
	if int(w)%2 == 1 {
		return math.Floor(c) + 0.5
	}
	return math.Round(c)
}

// base shapes: the outer outline and the border width.

func baseRoundedSquare(s float64) shape {
	m := s * 0.03
	return roundedRect(m, m, s-m, s-m, s*0.24)
}

func baseCircle(s float64) shape {
	return disk(s/2, s/2, s*0.485)
}

// glyphs, drawn in white on the badge.

func glyphCheck(s float64) shape {
	w := stroke(s, 0.14, 2)
	return polyline(w,
		[2]float64{s * 0.28, s * 0.53},
		[2]float64{s * 0.44, s * 0.69},
		[2]float64{s * 0.73, s * 0.34})
}

func glyphCross(s float64) shape {
	w := stroke(s, 0.14, 2)
	a, b := s*0.32, s*0.68
	return union(segment(a, a, b, b, w), segment(b, a, a, b, w))
}

func glyphExclamation(s float64) shape {
	w := stroke(s, 0.15, 2)
	cx := snap(s/2, w)
	return union(
		segment(cx, s*0.22+w/2, cx, s*0.58-w/2, w),
		disk(cx, s*0.76, w*0.62))
}

func glyphQuestion(s float64) shape {
	w := stroke(s, 0.12, 2)
	cx, cy, r := s*0.5, s*0.37, s*0.15
	pts := arcPoints(cx, cy, r, 190, 420)
	last := pts[len(pts)-1]
	stemX := snap(cx, w)
	pts = append(pts, [2]float64{stemX, last[1] + s*0.06}, [2]float64{stemX, s * 0.6})
	return union(polyline(w, pts...), disk(stemX, s*0.77, w*0.62))
}

func glyphClock(s float64) shape {
	w := stroke(s, 0.09, 1.5)
	cx, cy, r := s/2, s/2, s*0.29
	ring := func(x, y float64) bool { return math.Abs(math.Hypot(x-cx, y-cy)-r) <= w/2 }
	hx := snap(cx, w)
	return union(ring,
		segment(hx, cy, hx, cy-r*0.62, w),
		segment(hx, cy, cx+r*0.5, cy+r*0.22, w))
}

func glyphArrows(s float64) shape {
	w := stroke(s, 0.1, 1.5)
	cx, cy, r := s/2, s/2, s*0.26
	head := func(angle float64) shape {
		// arrowhead at the end of an arc running clockwise to angle
		a := angle * math.Pi / 180
		px, py := cx+r*math.Cos(a), cy+r*math.Sin(a)
		tx, ty := -math.Sin(a), math.Cos(a) // clockwise tangent
		nx, ny := math.Cos(a), math.Sin(a)  // outward normal
		l, h := s*0.16, s*0.15
		return triangle(
			[2]float64{px + tx*l*0.8, py + ty*l*0.8},
			[2]float64{px + nx*h - tx*l*0.2, py + ny*h - ty*l*0.2},
			[2]float64{px - nx*h - tx*l*0.2, py - ny*h - ty*l*0.2})
	}
	return union(
		polyline(w, arcPoints(cx, cy, r, 200, 320)...), head(320),
		polyline(w, arcPoints(cx, cy, r, 20, 140)...), head(140))
}

func glyphPause(s float64) shape {
	w := stroke(s, 0.13, 2)
	gap := stroke(s, 0.12, 2)
	left := math.Round(s/2 - gap/2 - w)
	top, bottom := math.Round(s*0.3), math.Round(s*0.7)
	r := math.Min(w/2, s*0.03)
	return union(
		roundedRect(left, top, left+w, bottom, r),
		roundedRect(left+w+gap, top, left+2*w+gap, bottom, r))
}

// render draws one icon of size×size pixels.
func render(size int, base func(float64) shape, st state) *image.NRGBA {
	s := float64(size)
	outer := base(s)
	border := math.Max(1, math.Round(s*0.04))
	inner := shrink(outer, border)
	glyph := st.glyph(s)
	edge := shade(st.fill, 0.72)
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	for py := range size {
		// a gentle vertical gradient: lighter at the top
		top := shade(st.fill, 1.12-0.16*float64(py)/s)
		for px := range size {
			var r, g, b, a float64
			for sy := range supersample {
				for sx := range supersample {
					x := float64(px) + (float64(sx)+0.5)/supersample
					y := float64(py) + (float64(sy)+0.5)/supersample
					var c color.NRGBA
					switch {
					case !outer(x, y):
						continue
					case glyph(x, y):
						c = color.NRGBA{0xff, 0xff, 0xff, 0xff}
					case inner(x, y):
						c = top
					default:
						c = edge
					}
					r += float64(c.R)
					g += float64(c.G)
					b += float64(c.B)
					a++
				}
			}
			if a == 0 {
				continue
			}
			n := float64(supersample * supersample)
			img.SetNRGBA(px, py, color.NRGBA{
				R: uint8(math.Round(r / a)),
				G: uint8(math.Round(g / a)),
				B: uint8(math.Round(b / a)),
				A: uint8(math.Round(255 * a / n)),
			})
		}
	}
	return img
}

// shrink returns the points of s at least d away from its outside, checked
// at 16 directions (exact enough for convex badges).
func shrink(s shape, d float64) shape {
	return func(x, y float64) bool {
		if !s(x, y) {
			return false
		}
		for i := range 16 {
			a := float64(i) * math.Pi / 8
			if !s(x+d*math.Cos(a), y+d*math.Sin(a)) {
				return false
			}
		}
		return true
	}
}

func shade(c color.NRGBA, f float64) color.NRGBA {
	m := func(v uint8) uint8 { return uint8(math.Max(0, math.Min(255, math.Round(float64(v)*f)))) }
	return color.NRGBA{m(c.R), m(c.G), m(c.B), c.A}
}

// encodeICO writes an ICO file with one 32-bit BMP (DIB) image per entry,
// the format every Windows version loads.
func encodeICO(imgs []*image.NRGBA) []byte {
	var dibs [][]byte
	for _, img := range imgs {
		dibs = append(dibs, dib(img))
	}
	var buf bytes.Buffer
	le := binary.LittleEndian
	hdr := make([]byte, 6)
	le.PutUint16(hdr[2:], 1) // type: icon
	le.PutUint16(hdr[4:], uint16(len(imgs)))
	buf.Write(hdr)
	offset := 6 + 16*len(imgs)
	for i, img := range imgs {
		e := make([]byte, 16)
		w := img.Bounds().Dx()
		e[0], e[1] = byte(w%256), byte(w%256) // 0 means 256
		le.PutUint16(e[4:], 1)                // planes
		le.PutUint16(e[6:], 32)               // bits per pixel
		le.PutUint32(e[8:], uint32(len(dibs[i])))
		le.PutUint32(e[12:], uint32(offset))
		buf.Write(e)
		offset += len(dibs[i])
	}
	for _, d := range dibs {
		buf.Write(d)
	}
	return buf.Bytes()
}

// dib is a BITMAPINFOHEADER, bottom-up BGRA pixels and a 1-bit AND mask.
func dib(img *image.NRGBA) []byte {
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	le := binary.LittleEndian
	maskStride := ((w + 31) / 32) * 4
	out := make([]byte, 40, 40+w*h*4+maskStride*h)
	le.PutUint32(out[0:], 40)
	le.PutUint32(out[4:], uint32(w))
	le.PutUint32(out[8:], uint32(2*h)) // XOR image + AND mask
	le.PutUint16(out[12:], 1)
	le.PutUint16(out[14:], 32)
	le.PutUint32(out[20:], uint32(w*h*4+maskStride*h))
	for y := h - 1; y >= 0; y-- {
		for x := range w {
			c := img.NRGBAAt(x, y)
			out = append(out, c.B, c.G, c.R, c.A)
		}
	}
	for y := h - 1; y >= 0; y-- {
		row := make([]byte, maskStride)
		for x := range w {
			if img.NRGBAAt(x, y).A == 0 {
				row[x/8] |= 0x80 >> (x % 8)
			}
		}
		out = append(out, row...)
	}
	if len(out) != 40+w*h*4+maskStride*h {
		panic(fmt.Sprintf("dib: %d bytes, want %d", len(out), 40+w*h*4+maskStride*h))
	}
	return out
}
