package fashionmnist

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func gz(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// writeSplit writes a small synthetic test split (n images) under dir.
func writeSplit(t *testing.T, dir string, n int, images, labels []byte) {
	t.Helper()
	im, lb, _ := Files(dir, Test)
	if err := os.WriteFile(im, gz(t, WriteIDX([]int{n, Side, Side}, images)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lb, gz(t, WriteIDX([]int{n}, labels)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadSynthetic(t *testing.T) {
	dir := t.TempDir()
	n := 3
	img := make([]byte, n*Side*Side)
	for i := range img {
		img[i] = byte(i % 256)
	}
	writeSplit(t, dir, n, img, []byte{0, 9, 4})
	s, err := Load(dir, Test)
	if err != nil {
		t.Fatal(err)
	}
	if s.N != n || len(s.Images) != n*Side*Side || len(s.Labels) != n {
		t.Fatalf("got N=%d, %d pixels, %d labels", s.N, len(s.Images), len(s.Labels))
	}
	if s.Labels[1] != 9 || s.Labels[2] != 4 {
		t.Errorf("labels %v, want [0 9 4]", s.Labels)
	}
	// Pixel 255 of image 0 is byte 255 -> 1.0; pixel 1 of image 1 is (784+1)%256 = 17.
	if s.Images[255] != 1 || s.Image(1)[1] != float32(17)/255 {
		t.Errorf("pixel scaling wrong: %v %v", s.Images[255], s.Image(1)[1])
	}
}

func TestDamagedFiles(t *testing.T) {
	good := WriteIDX([]int{2, Side, Side}, make([]byte, 2*Side*Side))
	cases := map[string]struct {
		data []byte
		want string
	}{
		"bad magic":       {append([]byte{1, 2, 3, 4}, good[4:]...), "magic"},
		"wrong type":      {append([]byte{0, 0, 0x0d, 3}, good[4:]...), "element type"},
		"truncated data":  {good[:len(good)-10], "truncated"},
		"truncated head":  {good[:6], "truncated IDX header"},
		"extra data":      {append(append([]byte{}, good...), 1, 2), "longer"},
		"zero dimension":  {WriteIDX([]int{0, Side, Side}, nil), "implausible"},
		"empty file":      {nil, "too short"},
		"broken gzip":     {[]byte{0x1f, 0x8b, 1, 2, 3}, "gzip"},
		"huge dimensions": {WriteIDX([]int{1 << 20, 1 << 20}, nil), "implausible"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := ReadIDX(bytes.NewReader(c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestLoadErrorsNameFileAndInstall(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(dir, Test)
	if err == nil || !strings.Contains(err.Error(), "t10k-images-idx3-ubyte.gz") || !strings.Contains(err.Error(), "apt-get install dataset-fashion-mnist") {
		t.Fatalf("missing file error %v should name the file and the apt command", err)
	}
	// Images with the wrong shape.
	im, lb, _ := Files(dir, Test)
	_ = os.WriteFile(im, gz(t, WriteIDX([]int{2, 10, 10}, make([]byte, 200))), 0o644)
	_ = os.WriteFile(lb, gz(t, WriteIDX([]int{2}, []byte{1, 2})), 0o644)
	if _, err := Load(dir, Test); err == nil || !strings.Contains(err.Error(), filepath.Base(im)) {
		t.Fatalf("bad shape error %v should name %s", err, im)
	}
	// Label out of range, and count mismatch.
	writeSplit(t, dir, 2, make([]byte, 2*Side*Side), []byte{1, 12})
	if _, err := Load(dir, Test); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("label range error: %v", err)
	}
	_ = os.WriteFile(lb, gz(t, WriteIDX([]int{3}, []byte{1, 2, 3})), 0o644)
	if _, err := Load(dir, Test); err == nil || !strings.Contains(err.Error(), "3 labels") {
		t.Fatalf("count mismatch error: %v", err)
	}
	if _, err := Load(dir, Split("validation")); err == nil {
		t.Fatal("unknown split accepted")
	}
}

func TestInstalledDataset(t *testing.T) {
	if ok, why := Installed(DefaultDir); !ok {
		t.Skipf("Fashion-MNIST not installed (%s); install with: %s", why, InstallHint)
	}
	s, err := Load("", Test)
	if err != nil {
		t.Fatal(err)
	}
	if s.N != 10000 {
		t.Fatalf("test split has %d images, want 10000", s.N)
	}
	counts := make([]int, NumClasses)
	for _, y := range s.Labels {
		counts[y]++
	}
	for k, c := range counts {
		if c != 1000 {
			t.Errorf("class %d (%s) has %d test images, want 1000", k, ClassNames[k], c)
		}
	}
}

// TestReadIDXHeaderDoesNotAllocateClaim checks that a 16-byte header claiming 1 GiB of data makes the
// reader fail without allocating what the header claims (before the fix it allocated 1 GiB).
func TestReadIDXHeaderDoesNotAllocateClaim(t *testing.T) {
	head := WriteIDX([]int{1 << 10, 1 << 10, 1 << 10}, nil) // claims 2^30 bytes, holds none
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := ReadIDX(bytes.NewReader(head))
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("err = %v, want a truncation error", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("reading a %d-byte header allocated %d bytes", len(head), grew)
	}
}

// FuzzReadIDX feeds arbitrary bytes (raw and gzip-compressed) to the IDX reader: it must return
// an error or data whose size is the product of its dimensions, never panic, and never allocate
// much more than its input (ReadAll growth aside).
func FuzzReadIDX(f *testing.F) {
	f.Add(WriteIDX([]int{2, 3}, []byte{1, 2, 3, 4, 5, 6}))
	f.Add(WriteIDX([]int{4}, []byte{0, 1, 2, 9}))
	f.Add(WriteIDX([]int{1 << 10, 1 << 10, 1 << 10}, nil))
	f.Add([]byte{0, 0, 8, 1, 0, 0, 0, 1, 7})
	var zb bytes.Buffer
	w := gzip.NewWriter(&zb)
	_, _ = w.Write(WriteIDX([]int{1, 2, 2}, []byte{1, 2, 3, 4}))
	_ = w.Close()
	f.Add(zb.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		dims, data, err := ReadIDX(bytes.NewReader(in))
		if err != nil {
			if dims != nil || data != nil {
				t.Fatalf("error %v with non-nil result", err)
			}
			return
		}
		n := 1
		for _, d := range dims {
			if d <= 0 {
				t.Fatalf("accepted dimension %d", d)
			}
			n *= d
		}
		if n != len(data) {
			t.Fatalf("dims %v but %d bytes", dims, len(data))
		}
	})
}
