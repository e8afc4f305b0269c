package shim

import (
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise/internal/safeio"
	"github.com/x448/float16"
	"google.golang.org/protobuf/encoding/protowire"
)

// ONNX TensorProto.DataType codes.
const (
	onnxFloat    = 1
	onnxUint8    = 2
	onnxInt8     = 3
	onnxUint16   = 4
	onnxInt16    = 5
	onnxInt32    = 6
	onnxInt64    = 7
	onnxString   = 8
	onnxBool     = 9
	onnxFloat16  = 10
	onnxDouble   = 11
	onnxUint32   = 12
	onnxUint64   = 13
	onnxBfloat16 = 16
)

// dtypeOf maps an ONNX element type to the GoMLX dtype we hold it in. FLOAT16 and BFLOAT16 map to
// float32: half-precision weights are widened at load, and the graph computes in float32.
func dtypeOf(code int) (dtypes.DType, error) {
	switch code {
	case onnxFloat, onnxFloat16, onnxBfloat16:
		return dtypes.Float32, nil
	case onnxDouble:
		return dtypes.Float64, nil
	case onnxUint8:
		return dtypes.Uint8, nil
	case onnxInt8:
		return dtypes.Int8, nil
	case onnxUint16:
		return dtypes.Uint16, nil
	case onnxInt16:
		return dtypes.Int16, nil
	case onnxInt32:
		return dtypes.Int32, nil
	case onnxInt64:
		return dtypes.Int64, nil
	case onnxUint32:
		return dtypes.Uint32, nil
	case onnxUint64:
		return dtypes.Uint64, nil
	case onnxBool:
		return dtypes.Bool, nil
	}
	return dtypes.InvalidDType, fmt.Errorf("unsupported ONNX element type %s", typeName(code))
}

// typeName is the ONNX name of an element type code.
func typeName(code int) string {
	names := map[int]string{1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
		8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64",
		15: "COMPLEX128", 16: "BFLOAT16", 17: "FLOAT8E4M3FN", 18: "FLOAT8E4M3FNUZ", 19: "FLOAT8E5M2",
		20: "FLOAT8E5M2FNUZ", 21: "UINT4", 22: "INT4", 23: "FLOAT4E2M1"}
	if n, ok := names[code]; ok {
		return n
	}
	return "type#" + strconv.Itoa(code)
}

// rawTensor is a TensorProto's fields, as read from its protobuf wire encoding.
type rawTensor struct {
	name     string
	dims     []int
	dataType int
	raw      []byte
	floats   []float32
	int32s   []int32 // also holds (u)int8/16, bool, float16 and bfloat16 bits
	int64s   []int64
	doubles  []float64
	uint64s  []uint64
	external map[string]string
	location int // 1 = EXTERNAL
}

// decodeTensor parses a serialized ONNX TensorProto. dir is the folder external data paths are
// relative to. The result holds float32 for FLOAT, FLOAT16 and BFLOAT16 data.
func decodeTensor(b []byte, dir string) (*tensors.Tensor, string, error) {
	rt, err := parseTensorProto(b)
	if err != nil {
		return nil, "", err
	}
	t, err := rt.toTensor(dir)
	if err != nil {
		if rt.name != "" {
			return nil, rt.name, fmt.Errorf("tensor %q: %w", rt.name, err)
		}
		return nil, rt.name, err
	}
	return t, rt.name, nil
}

func parseTensorProto(b []byte) (*rawTensor, error) {
	rt := &rawTensor{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("malformed tensor: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var val []byte
		var v uint64
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			val, n = protowire.ConsumeBytes(b)
		case protowire.Fixed32Type:
			var u uint32
			u, n = protowire.ConsumeFixed32(b)
			v = uint64(u)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return nil, fmt.Errorf("malformed tensor: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var err error
		switch num {
		case 1: // dims
			err = ints(typ, v, val, func(x uint64) { rt.dims = append(rt.dims, int(int64(x))) })
		case 2:
			rt.dataType = int(v)
		case 4: // float_data
			if typ == protowire.BytesType {
				for i := 0; i+4 <= len(val); i += 4 {
					rt.floats = append(rt.floats, math.Float32frombits(binary.LittleEndian.Uint32(val[i:])))
				}
			} else {
				rt.floats = append(rt.floats, math.Float32frombits(uint32(v)))
			}
		case 5: // int32_data
			err = ints(typ, v, val, func(x uint64) { rt.int32s = append(rt.int32s, int32(x)) })
		case 7: // int64_data
			err = ints(typ, v, val, func(x uint64) { rt.int64s = append(rt.int64s, int64(x)) })
		case 8:
			rt.name = string(val)
		case 9:
			rt.raw = val
		case 10: // double_data
			if typ == protowire.BytesType {
				for i := 0; i+8 <= len(val); i += 8 {
					rt.doubles = append(rt.doubles, math.Float64frombits(binary.LittleEndian.Uint64(val[i:])))
				}
			} else {
				rt.doubles = append(rt.doubles, math.Float64frombits(v))
			}
		case 11: // uint64_data
			err = ints(typ, v, val, func(x uint64) { rt.uint64s = append(rt.uint64s, x) })
		case 13: // external_data: StringStringEntryProto{key = 1, value = 2}
			k, vv, e := parseEntry(val)
			if e != nil {
				return nil, e
			}
			if rt.external == nil {
				rt.external = map[string]string{}
			}
			rt.external[k] = vv
		case 14:
			rt.location = int(v)
		}
		if err != nil {
			return nil, err
		}
	}
	return rt, nil
}

// ints decodes a repeated integer field, packed or not.
func ints(typ protowire.Type, v uint64, val []byte, add func(uint64)) error {
	if typ != protowire.BytesType {
		add(v)
		return nil
	}
	for len(val) > 0 {
		x, n := protowire.ConsumeVarint(val)
		if n < 0 {
			return fmt.Errorf("malformed tensor: %w", protowire.ParseError(n))
		}
		add(x)
		val = val[n:]
	}
	return nil
}

func parseEntry(b []byte) (key, value string, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", "", fmt.Errorf("malformed external data entry")
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return "", "", fmt.Errorf("malformed external data entry")
			}
			b = b[n:]
			continue
		}
		val, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return "", "", fmt.Errorf("malformed external data entry")
		}
		b = b[n:]
		switch num {
		case 1:
			key = string(val)
		case 2:
			value = string(val)
		}
	}
	return key, value, nil
}

// readExternal returns the bytes of an external-data tensor: keys location (relative to dir),
// offset and length.
func (rt *rawTensor) readExternal(dir string) ([]byte, error) {
	loc := rt.external["location"]
	if loc == "" {
		return nil, fmt.Errorf("external data without a location")
	}
	if filepath.IsAbs(loc) || strings.Contains(filepath.ToSlash(loc), "../") {
		return nil, fmt.Errorf("external data location %q must be a relative path inside the model's folder", loc)
	}
	path := filepath.Join(dir, loc)
	f, err := safeio.OpenRegular(path, safeio.Weights)
	if err != nil {
		return nil, fmt.Errorf("external data: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("external data: %w", err)
	}
	offset, length := int64(0), st.Size()
	if s, ok := rt.external["offset"]; ok {
		if offset, err = strconv.ParseInt(s, 10, 64); err != nil || offset < 0 {
			return nil, fmt.Errorf("external data %s: bad offset %q", loc, s)
		}
	}
	length -= offset
	if s, ok := rt.external["length"]; ok {
		l, err := strconv.ParseInt(s, 10, 64)
		if err != nil || l < 0 {
			return nil, fmt.Errorf("external data %s: bad length %q", loc, s)
		}
		length = l
	}
	if offset+length > st.Size() {
		return nil, fmt.Errorf("external data %s: bytes [%d, %d) past the end of the file (%d bytes)", loc, offset, offset+length, st.Size())
	}
	buf := make([]byte, length)
	if _, err := f.ReadAt(buf, offset); err != nil {
		return nil, fmt.Errorf("external data %s: %w", loc, err)
	}
	return buf, nil
}

func (rt *rawTensor) toTensor(dir string) (*tensors.Tensor, error) {
	dt, err := dtypeOf(rt.dataType)
	if err != nil {
		return nil, err
	}
	n := 1
	for _, d := range rt.dims {
		if d < 0 {
			return nil, fmt.Errorf("negative dimension in %v", rt.dims)
		}
		if d > 0 && n > maxElements/d {
			return nil, fmt.Errorf("dimensions %v hold more than %d values", rt.dims, maxElements)
		}
		n *= d
	}
	raw := rt.raw
	if rt.location == 1 {
		if raw, err = rt.readExternal(dir); err != nil {
			return nil, err
		}
	}
	if have := rt.count(raw); have != n {
		return nil, fmt.Errorf("%s tensor of shape %v holds %d values, want %d", typeName(rt.dataType), rt.dims, have, n)
	}
	t := tensors.FromShape(shapes.Make(dt, rt.dims...))
	var fillErr error
	count := func(have int) bool {
		if have != n {
			fillErr = fmt.Errorf("%s tensor of shape %v holds %d values, want %d", typeName(rt.dataType), rt.dims, have, n)
			return false
		}
		return true
	}
	if err := t.MutableFlatData(func(flat any) {
		if err := rt.fill(flat, raw, count); err != nil {
			fillErr = err
		}
	}); err != nil {
		return nil, err
	}
	if fillErr != nil {
		t.FinalizeAll()
		return nil, fillErr
	}
	return t, nil
}

// fill copies the tensor's values, from raw (raw_data or external data) or the typed fields, into
// flat (the GoMLX tensor's data, in the dtype dtypeOf gives); count checks a value count.
func (rt *rawTensor) fill(flat any, raw []byte, count func(have int) bool) error {
	switch out := flat.(type) {
	case []float32:
		switch {
		case raw != nil && rt.dataType == onnxFloat:
			if count(len(raw) / 4) {
				for i := range out {
					out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
				}
			}
		case raw != nil: // 16-bit floats
			if count(len(raw) / 2) {
				for i := range out {
					out[i] = half(rt.dataType, binary.LittleEndian.Uint16(raw[2*i:]))
				}
			}
		case rt.dataType == onnxFloat:
			if count(len(rt.floats)) {
				copy(out, rt.floats)
			}
		default:
			if count(len(rt.int32s)) {
				for i := range out {
					out[i] = half(rt.dataType, uint16(rt.int32s[i]))
				}
			}
		}
	case []float64:
		if raw != nil {
			if count(len(raw) / 8) {
				for i := range out {
					out[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
				}
			}
		} else if count(len(rt.doubles)) {
			copy(out, rt.doubles)
		}
	case []int64:
		if raw != nil {
			if count(len(raw) / 8) {
				for i := range out {
					out[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
				}
			}
		} else if count(len(rt.int64s)) {
			copy(out, rt.int64s)
		}
	case []uint64:
		if raw != nil {
			if count(len(raw) / 8) {
				for i := range out {
					out[i] = binary.LittleEndian.Uint64(raw[8*i:])
				}
			}
		} else if count(len(rt.uint64s)) {
			copy(out, rt.uint64s)
		}
	case []int32:
		fillInts(out, raw, 4, rt.int32s, count, func(b []byte) int32 { return int32(binary.LittleEndian.Uint32(b)) })
	case []uint32:
		if raw == nil && count(len(rt.uint64s)) {
			for i := range out {
				out[i] = uint32(rt.uint64s[i])
			}
		} else if raw != nil && count(len(raw)/4) {
			for i := range out {
				out[i] = binary.LittleEndian.Uint32(raw[4*i:])
			}
		}
	case []int16:
		fillInts(out, raw, 2, rt.int32s, count, func(b []byte) int16 { return int16(binary.LittleEndian.Uint16(b)) })
	case []uint16:
		fillInts(out, raw, 2, rt.int32s, count, func(b []byte) uint16 { return binary.LittleEndian.Uint16(b) })
	case []int8:
		fillInts(out, raw, 1, rt.int32s, count, func(b []byte) int8 { return int8(b[0]) })
	case []uint8:
		fillInts(out, raw, 1, rt.int32s, count, func(b []byte) uint8 { return b[0] })
	case []bool:
		fillInts(out, raw, 1, rt.int32s, count, func(b []byte) bool { return b[0] != 0 })
	default:
		return fmt.Errorf("unsupported ONNX element type %s", typeName(rt.dataType))
	}
	return nil
}

// maxElements bounds a tensor's size (2^34 values, 64 GiB of float32), so that a corrupt shape is an
// error rather than an allocation failure.
const maxElements = 1 << 34

// count is the number of values the tensor's data holds (raw bytes, or the typed field in use).
func (rt *rawTensor) count(raw []byte) int {
	if raw != nil {
		width := map[int]int{onnxFloat: 4, onnxUint8: 1, onnxInt8: 1, onnxUint16: 2, onnxInt16: 2, onnxInt32: 4,
			onnxInt64: 8, onnxBool: 1, onnxFloat16: 2, onnxDouble: 8, onnxUint32: 4, onnxUint64: 8, onnxBfloat16: 2}[rt.dataType]
		if width == 0 {
			return -1
		}
		return len(raw) / width
	}
	switch rt.dataType {
	case onnxFloat:
		return len(rt.floats)
	case onnxDouble:
		return len(rt.doubles)
	case onnxInt64:
		return len(rt.int64s)
	case onnxUint32, onnxUint64:
		return len(rt.uint64s)
	}
	return len(rt.int32s)
}

// fillInts fills out from little-endian raw bytes of the given width, or else from int32_data.
func fillInts[T int32 | int16 | uint16 | int8 | uint8 | bool](out []T, raw []byte, width int, i32 []int32,
	count func(int) bool, fromBytes func([]byte) T) {
	if raw != nil {
		if count(len(raw) / width) {
			for i := range out {
				out[i] = fromBytes(raw[width*i:])
			}
		}
		return
	}
	if count(len(i32)) {
		for i := range out {
			var b [4]byte
			binary.LittleEndian.PutUint32(b[:], uint32(i32[i]))
			if width == 1 {
				b[0] = byte(i32[i])
			}
			out[i] = fromBytes(b[:])
		}
	}
}

// half widens a FLOAT16 or BFLOAT16 bit pattern to float32.
func half(code int, bits uint16) float32 {
	if code == onnxBfloat16 {
		return math.Float32frombits(uint32(bits) << 16)
	}
	return float16.Frombits(bits).Float32()
}
