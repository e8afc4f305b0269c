// Package fashionmnist reads the Fashion-MNIST data set (Xiao, Rasul and Vollgraf, 2017) from the
// IDX files that Debian's dataset-fashion-mnist package installs under /usr/share/datasets/fashion-mnist.
//
// The IDX format is a big-endian header — two zero bytes, a type byte (0x08 = unsigned byte), the
// number of dimensions d — followed by d uint32 dimension sizes and then the data in row-major
// order. Files may be gzip-compressed. Images are 28x28 grey levels 0..255 (converted here to
// float32 in [0, 1]); labels are class ids 0..9 in the order of ClassNames.
package fashionmnist

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// DefaultDir is where Debian's dataset-fashion-mnist package installs the files.
const DefaultDir = "/usr/share/datasets/fashion-mnist"

// InstallHint is the command that installs the data set.
const InstallHint = "sudo apt-get install dataset-fashion-mnist"

// Side is the image height and width in pixels.
const Side = 28

// NumClasses is the number of clothing classes.
const NumClasses = 10

// ClassNames are the class names in label order (label i is ClassNames[i]).
var ClassNames = []string{"t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
	"sneaker", "bag", "ankle boot"}

// Split selects the training (60000 images) or test (10000 images) part of the data set.
type Split string

const (
	Train Split = "train"
	Test  Split = "test"
)

// Set is a loaded split: N images of Side x Side pixels, row-major, values in [0, 1].
type Set struct {
	N      int
	Images []float32 // N*Side*Side
	Labels []int32   // N, in [0, NumClasses)
}

// Image returns the i-th image's Side*Side pixels (a slice of Images, not a copy).
func (s *Set) Image(i int) []float32 { return s.Images[i*Side*Side : (i+1)*Side*Side] }

// Files returns the image and label file paths of a split under dir.
func Files(dir string, split Split) (images, labels string, err error) {
	var prefix string
	switch split {
	case Train:
		prefix = "train"
	case Test:
		prefix = "t10k"
	default:
		return "", "", fmt.Errorf("unknown split %q (want %q or %q)", split, Train, Test)
	}
	return filepath.Join(dir, prefix+"-images-idx3-ubyte.gz"), filepath.Join(dir, prefix+"-labels-idx1-ubyte.gz"), nil
}

// Installed reports whether both splits' files exist under dir, and otherwise what is missing.
func Installed(dir string) (bool, string) {
	for _, sp := range []Split{Train, Test} {
		im, lb, _ := Files(dir, sp)
		for _, p := range []string{im, lb} {
			if _, err := os.Stat(p); err != nil {
				return false, fmt.Sprintf("%s not found", p)
			}
		}
	}
	return true, ""
}

// Load reads a split from dir (DefaultDir if empty), validating both files' headers, sizes and
// label range, and that they hold the same number of examples. Any problem is one error naming the
// file; a missing file also names the apt command that installs it.
func Load(dir string, split Split) (*Set, error) {
	if dir == "" {
		dir = DefaultDir
	}
	imPath, lbPath, err := Files(dir, split)
	if err != nil {
		return nil, err
	}
	imDims, imData, err := ReadIDXFile(imPath)
	if err != nil {
		return nil, err
	}
	if len(imDims) != 3 || imDims[1] != Side || imDims[2] != Side {
		return nil, fmt.Errorf("%s: expected images of shape [N,%d,%d], found %v (damaged file? reinstall with: %s --reinstall)",
			imPath, Side, Side, imDims, InstallHint)
	}
	lbDims, lbData, err := ReadIDXFile(lbPath)
	if err != nil {
		return nil, err
	}
	if len(lbDims) != 1 {
		return nil, fmt.Errorf("%s: expected labels of shape [N], found %v (damaged file? reinstall with: %s --reinstall)",
			lbPath, lbDims, InstallHint)
	}
	if lbDims[0] != imDims[0] {
		return nil, fmt.Errorf("%s has %d labels but %s has %d images", lbPath, lbDims[0], imPath, imDims[0])
	}
	n := imDims[0]
	s := &Set{N: n, Images: make([]float32, len(imData)), Labels: make([]int32, n)}
	for i, b := range imData {
		s.Images[i] = float32(b) / 255
	}
	for i, b := range lbData {
		if int(b) >= NumClasses {
			return nil, fmt.Errorf("%s: label %d of example %d is outside [0,%d)", lbPath, b, i, NumClasses)
		}
		s.Labels[i] = int32(b)
	}
	return s, nil
}

// maxElements bounds the size a header may claim, so a damaged header cannot ask for huge memory.
const maxElements = 1 << 30

// ReadIDXFile reads an unsigned-byte IDX file (gzip-compressed or not) and returns its dimensions
// and data. Errors name the file; a missing file names the apt command that installs it.
func ReadIDXFile(path string) (dims []int, data []byte, err error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("Fashion-MNIST file %s not found; install the data set with: %s", path, InstallHint)
		}
		return nil, nil, fmt.Errorf("opening Fashion-MNIST file: %w", err)
	}
	defer f.Close()
	dims, data, err = ReadIDX(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w (damaged file? reinstall with: %s --reinstall)", path, err, InstallHint)
	}
	return dims, data, nil
}

// ReadIDX reads an unsigned-byte IDX stream, gunzipping it first if it starts with the gzip magic.
// It checks the magic number, that the dimensions are positive and that the data has exactly
// prod(dims) bytes.
func ReadIDX(r io.Reader) (dims []int, data []byte, err error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(2)
	if err != nil {
		return nil, nil, fmt.Errorf("file too short for an IDX header")
	}
	var src io.Reader = br
	if head[0] == 0x1f && head[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("bad gzip stream: %v", err)
		}
		defer gz.Close()
		src = gz
	}
	var magic [4]byte
	if _, err := io.ReadFull(src, magic[:]); err != nil {
		return nil, nil, fmt.Errorf("truncated IDX header: %v", cleanErr(err))
	}
	if magic[0] != 0 || magic[1] != 0 {
		return nil, nil, fmt.Errorf("bad IDX magic number % x (want 00 00 08 nd)", magic)
	}
	if magic[2] != 0x08 {
		return nil, nil, fmt.Errorf("IDX element type 0x%02x is not unsigned byte (0x08)", magic[2])
	}
	nd := int(magic[3])
	if nd < 1 || nd > 4 {
		return nil, nil, fmt.Errorf("IDX header claims %d dimensions (want 1 to 4)", nd)
	}
	total := 1
	dims = make([]int, nd)
	for i := range dims {
		var d uint32
		if err := binary.Read(src, binary.BigEndian, &d); err != nil {
			return nil, nil, fmt.Errorf("truncated IDX header: %v", cleanErr(err))
		}
		if d == 0 || uint64(total)*uint64(d) > maxElements {
			return nil, nil, fmt.Errorf("IDX header has implausible dimension %d", d)
		}
		dims[i] = int(d)
		total *= int(d)
	}
	// Read what is there (at most one byte more than promised) rather than allocating what the
	// header claims: memory stays bounded by the real input, whatever a damaged header says.
	data, err = io.ReadAll(io.LimitReader(src, int64(total)+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading IDX data: %v", cleanErr(err))
	}
	if len(data) < total {
		return nil, nil, fmt.Errorf("IDX data truncated: header %v promises %d bytes, found %d", dims, total, len(data))
	}
	if len(data) > total {
		return nil, nil, fmt.Errorf("IDX data longer than its header %v promises", dims)
	}
	return dims, data, nil
}

func cleanErr(err error) string {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "unexpected end of file"
	}
	return strings.TrimSpace(err.Error())
}

// WriteIDX encodes data with dimensions dims as an uncompressed unsigned-byte IDX stream
// (used by tests to make small files).
func WriteIDX(dims []int, data []byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, 0, 0x08, byte(len(dims))})
	for _, d := range dims {
		_ = binary.Write(&b, binary.BigEndian, uint32(d))
	}
	b.Write(data)
	return b.Bytes()
}
