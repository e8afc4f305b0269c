// Package safeio reads and writes the files a command is given, refusing the ones that would hang
// it, exhaust its memory or lose data:
//
//   - ReadFile reads only a regular file (a FIFO, device, socket or folder is refused before any
//     read, so nothing blocks), and at most a size cap chosen by the file's kind (Kind).
//   - WriteFileAtomic replaces a path atomically (temporary file, fsync, rename) only when the path
//     is new or a regular file; a symbolic link is followed to its target, which must itself be new
//     or regular; anything else (a device such as /dev/null, a FIFO, a folder) is refused, so the
//     rename never replaces a node that is not ours. A path too long for the file system is refused
//     before any folder is made.
//
// Refusals wrap ErrRefused, which the command line reports as a usage error (exit code 2).
package safeio

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrRefused marks a path refused because of what it is (not a regular file, too large, too long).
var ErrRefused = errors.New("refused")

// refusal is an error that wraps ErrRefused with its own message.
type refusal struct{ msg string }

func (r *refusal) Error() string        { return r.msg }
func (r *refusal) Is(target error) bool { return target == ErrRefused }

func refusef(format string, args ...any) error { return &refusal{msg: fmt.Sprintf(format, args...)} }

// Kind is a kind of input file, with its size cap in bytes.
type Kind struct {
	Name string
	Max  int64
}

// The kinds of input files and their caps. JSON configs are a few kB; weights files (safetensors,
// ONNX) are capped at what the loaders accept in memory; a safetensors file is also checked
// against its own header by its loader.
var (
	JSON    = Kind{Name: "JSON file", Max: 16 << 20}
	Weights = Kind{Name: "weights file", Max: 16 << 30}
	Data    = Kind{Name: "data file", Max: 1 << 30}
)

// ReadFile returns the contents of the regular file at path, refusing (ErrRefused) a path that is
// not a regular file after following links, or whose size exceeds kind.Max. The file is opened
// without blocking (a FIFO is refused by its type, never read) and read to its size at open time,
// so a file that keeps growing cannot make it read without end.
func ReadFile(path string, kind Kind) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, refusef("%s is %s, not a regular file; refusing to read it as a %s", path, describeMode(st.Mode()), kind.Name)
	}
	size := st.Size()
	if size > kind.Max {
		return nil, refusef("%s is %s, more than a %s may be (%s)", path, FormatSize(size), kind.Name, FormatSize(kind.Max))
	}
	data := make([]byte, 0, size)
	buf := make([]byte, 64<<10)
	for int64(len(data)) < size {
		n, err := f.Read(buf[:min(int64(len(buf)), size-int64(len(data)))])
		data = append(data, buf[:n]...)
		if err == io.EOF {
			break // the file shrank while it was read: what is there is what we have
		}
		if err != nil {
			return nil, err
		}
	}
	return data, nil
}

// OpenRegular opens path for reading if it is a regular file of at most kind.Max bytes (see
// ReadFile); the caller closes it.
func OpenRegular(path string, kind Kind) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = refusef("%s is %s, not a regular file; refusing to read it as a %s", path, describeMode(st.Mode()), kind.Name)
	} else if err == nil && st.Size() > kind.Max {
		err = refusef("%s is %s, more than a %s may be (%s)", path, FormatSize(st.Size()), kind.Name, FormatSize(kind.Max))
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// describeMode names a file type for messages ("a FIFO", "a device", ...).
func describeMode(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO (named pipe)"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "not a regular file"
}

// FormatSize writes a byte count with a binary unit (e.g. "1.5 GiB").
func FormatSize(b int64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := int64(unit), 0
	for n := b / unit; n >= unit && exp < 5; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}

// Limits of Linux file systems: a path (PATH_MAX, with its terminating zero) and one name
// (NAME_MAX).
const (
	MaxPath = 4095
	MaxName = 255
)

// tempSuffix is the longest suffix os.CreateTemp adds to WriteFileAtomic's temporary name prefix
// (".<name>.tmp"): a decimal random number of up to 10 digits.
const tempSuffix = 10

// CheckPathLength refuses (ErrRefused) a path longer than the file system allows, or one of whose
// names is, counting the temporary file WriteFileAtomic makes beside the last name. It makes
// nothing, so a refused path leaves no folder behind.
func CheckPathLength(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	if len(abs) > MaxPath-len(".tmp")-tempSuffix-1 {
		return refusef("path is %d bytes long, more than the file system allows (%d): %s", len(abs), MaxPath, Shorten(path, 80))
	}
	for _, name := range strings.Split(filepath.ToSlash(path), "/") {
		if len(name) > MaxName {
			return refusef("the name %s is %d bytes long, more than the file system allows (%d)", Shorten(name, 60), len(name), MaxName)
		}
	}
	if base := filepath.Base(path); len(base)+len("..tmp")+tempSuffix > MaxName {
		return refusef("the file name %s is %d bytes long; with its temporary copy's prefix and suffix it would exceed the file system's %d", Shorten(base, 60), len(base), MaxName)
	}
	return nil
}

// Shorten returns s quoted, cut to at most n bytes (on a rune boundary) with the number of bytes
// left out, so that a huge argument is never echoed whole in a message.
func Shorten(s string, n int) string {
	if len(s) <= n {
		return fmt.Sprintf("%q", s)
	}
	cut := n
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q... (%d more bytes)", s[:cut], len(s)-cut)
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// Target resolves where a write to path lands: path itself when it does not exist or is a regular
// file; the target of a symbolic link (followed to its end) when that target is new or regular.
// Anything else is refused with ErrRefused.
func Target(path string) (string, error) {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return path, nil
	}
	if err != nil {
		return "", err
	}
	if st.Mode().IsRegular() {
		return path, nil
	}
	if st.Mode()&fs.ModeSymlink == 0 {
		return "", refusef("%s is %s; refusing to replace it with a regular file (write to a new path or a regular file)", path, describeMode(st.Mode()))
	}
	target, err := filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		// A dangling link: resolve it one step at a time to the path it would create.
		return danglingTarget(path)
	}
	if err != nil {
		return "", err
	}
	tst, err := os.Stat(target)
	if err != nil {
		return "", err
	}
	if !tst.Mode().IsRegular() {
		return "", refusef("%s links to %s, which is %s; refusing to replace it (write to a new path or a regular file)", path, target, describeMode(tst.Mode()))
	}
	return target, nil
}

// danglingTarget follows a chain of links that ends at a missing path, returning that path.
func danglingTarget(path string) (string, error) {
	p := path
	for range 40 {
		st, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return p, nil
		}
		if err != nil {
			return "", err
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			return "", refusef("%s resolves to %s, which is %s", path, p, describeMode(st.Mode()))
		}
		link, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(link) {
			link = filepath.Join(filepath.Dir(p), link)
		}
		p = link
	}
	return "", refusef("%s: too many levels of symbolic links", path)
}

// WriteFileAtomic writes data to path (see Target for which paths are accepted) via a temporary
// file in the same folder, fsync and a rename, then syncs the folder; missing folders are made.
// Temporary files that an interrupted earlier write of the same path left behind (".<name>.tmp*")
// are removed first: a path has one writer at a time.
func WriteFileAtomic(path string, data []byte) error {
	if path == "" {
		return refusef("empty output path")
	}
	if err := CheckPathLength(path); err != nil {
		return err
	}
	target, err := Target(path)
	if err != nil {
		return err
	}
	if target != path {
		if err := CheckPathLength(target); err != nil {
			return err
		}
	}
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	RemoveStaleTemps(target)
	f, err := os.CreateTemp(dir, tempPrefix(target)+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644) // CreateTemp makes 0600 files; outputs are ordinary files
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, target)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable; not all file systems support it
		_ = d.Close()
	}
	return nil
}

// tempPrefix is the name prefix of WriteFileAtomic's temporary files for path.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp" }

// RemoveStaleTemps deletes the temporary files an interrupted WriteFileAtomic of path left behind,
// and returns how many it removed.
func RemoveStaleTemps(path string) int {
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), globEscape(tempPrefix(path))+"*"))
	n := 0
	for _, m := range matches {
		if os.Remove(m) == nil {
			n++
		}
	}
	return n
}

func globEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`)
	return r.Replace(s)
}

// Stdout is the output path that means standard output.
const Stdout = "-"

// WriteOutput writes data to path with WriteFileAtomic, or to stdout when path is "-".
func WriteOutput(path string, data []byte, stdout io.Writer) error {
	if path == Stdout {
		_, err := stdout.Write(data)
		return err
	}
	return WriteFileAtomic(path, data)
}
