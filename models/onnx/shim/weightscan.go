package shim

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"google.golang.org/protobuf/encoding/protowire"
)

// WeightBytesOf is the memory the floating-point initializers of the ONNX file at path will hold
// once loaded (Model.WeightBytes of the loaded model: each weight's element count times its size
// as held, half precision widened to float32), read from the tensors' headers (dims and type).
// The file is scanned, not read into memory: tensor data inside it is skipped by seeking, and
// external data files are not opened, so a caller can refuse a model over its memory budget
// before allocating anything.
func WeightBytesOf(path string) (bytes int64, err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return 0, &FileError{Path: path, Err: errors.Unwrap(err)}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, &FileError{Path: path, Err: err}
	}
	if !st.Mode().IsRegular() {
		return 0, &FileError{Path: path, Err: fmt.Errorf("not a regular file")}
	}
	r := &scanReader{f: f}
	err = r.fields(st.Size(), func(num protowire.Number, typ protowire.Type, n int64, v uint64) (bool, error) {
		if num != modelGraph || typ != protowire.BytesType {
			return false, nil
		}
		return true, r.fields(n, func(num protowire.Number, typ protowire.Type, n int64, v uint64) (bool, error) {
			if num != graphInitializer || typ != protowire.BytesType {
				return false, nil
			}
			count, code, err := r.tensorHeader(n)
			if err != nil {
				return true, fmt.Errorf("initializer: %w", err)
			}
			if dt, err := dtypeOf(code); err == nil && dt.IsFloat() { // Model.WeightBytes counts these only
				bytes += count * int64(dt.Size())
			}
			return true, nil
		})
	})
	if err != nil {
		return 0, &FileError{Path: path, Err: err}
	}
	return bytes, nil
}

// scanReader reads a protobuf message from a file front to back through a small buffer, skipping
// the fields it does not descend into by seeking past them.
type scanReader struct {
	f        *os.File
	buf      []byte
	pos, end int
}

func (r *scanReader) byte() (byte, error) {
	if r.pos == r.end {
		if r.buf == nil {
			r.buf = make([]byte, 32<<10)
		}
		n, err := r.f.Read(r.buf)
		if n == 0 {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		r.pos, r.end = 0, n
	}
	r.pos++
	return r.buf[r.pos-1], nil
}

// varint reads a base-128 varint and how many bytes it took.
func (r *scanReader) varint() (uint64, int64, error) {
	var v uint64
	for i := range 10 {
		b, err := r.byte()
		if err != nil {
			return 0, 0, err
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			return v, int64(i + 1), nil
		}
	}
	return 0, 0, fmt.Errorf("malformed protobuf: varint too long")
}

// skip moves n bytes forward.
func (r *scanReader) skip(n int64) error {
	if buffered := int64(r.end - r.pos); n <= buffered {
		r.pos += int(n)
		return nil
	} else {
		n -= buffered
	}
	r.pos, r.end = 0, 0
	_, err := r.f.Seek(n, io.SeekCurrent)
	return err
}

// fields walks the n bytes of a message: fn receives each field's number, type and, for a
// length-delimited field, its length (for a varint, its value v), and reports whether it consumed
// the field's value (else it is skipped).
func (r *scanReader) fields(n int64, fn func(num protowire.Number, typ protowire.Type, n int64, v uint64) (bool, error)) error {
	for n > 0 {
		tag, k, err := r.varint()
		if err != nil {
			return err
		}
		n -= k
		num, typ := protowire.Number(tag>>3), protowire.Type(tag&7)
		var size int64 // the value's bytes after the tag (after the length for a length-delimited field)
		switch typ {
		case protowire.VarintType:
			v, k, err := r.varint()
			if err != nil {
				return err
			}
			n -= k
			if _, err := fn(num, typ, 0, v); err != nil {
				return err
			}
			continue
		case protowire.Fixed32Type:
			size = 4
		case protowire.Fixed64Type:
			size = 8
		case protowire.BytesType:
			l, k, err := r.varint()
			if err != nil {
				return err
			}
			n -= k
			size = int64(l)
		default:
			return fmt.Errorf("malformed protobuf: field %d of wire type %d", num, typ)
		}
		if size < 0 || size > n {
			return fmt.Errorf("malformed protobuf: field %d runs past its message", num)
		}
		used, err := fn(num, typ, size, 0)
		if err != nil {
			return err
		}
		if !used {
			if err := r.skip(size); err != nil {
				return err
			}
		}
		n -= size
	}
	if n < 0 {
		return fmt.Errorf("malformed protobuf: a field runs past its message")
	}
	return nil
}

// tensorHeader reads, from the n bytes of a serialized TensorProto, its element count (the
// product of its dims, 1 for a scalar) and data_type, skipping its data.
func (r *scanReader) tensorHeader(n int64) (count int64, code int, err error) {
	count = 1
	err = r.fields(n, func(num protowire.Number, typ protowire.Type, size int64, v uint64) (bool, error) {
		switch {
		case num == 1 && typ == protowire.VarintType: // one dim
			count *= int64(v)
		case num == 2 && typ == protowire.VarintType:
			code = int(v)
		case num == 1 && typ == protowire.BytesType: // packed dims
			for size > 0 {
				d, k, err := r.varint()
				if err != nil {
					return true, err
				}
				count *= int64(d)
				size -= k
			}
			if size != 0 {
				return true, fmt.Errorf("malformed protobuf: packed dims")
			}
			return true, nil
		}
		return false, nil
	})
	return count, code, err
}
