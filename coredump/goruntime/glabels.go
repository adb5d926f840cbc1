package goruntime

import (
	"errors"
	"fmt"
	"sort"
)

// Limits on a goroutine's profiler labels, which are target memory.
const (
	maxLabels        = 1024
	maxLabelBuckets  = 1 << 10
	maxLabelOverflow = 64
)

// Label is one profiler label of a goroutine (runtime/pprof.Do,
// SetGoroutineLabels).
type Label struct {
	Key, Value string
}

// Labels returns the profiler labels of goroutine g sorted by key, nil
// when it has none. g.labels points at a runtime/pprof.labelMap: a struct
// holding a []label since Go 1.24, a map[string]string before.
func (r *Runtime) Labels(g *G) ([]Label, error) {
	if g.Labels == 0 {
		return nil, nil
	}
	var out []Label
	var err error
	if r.Version.AtLeast(24) {
		out, err = r.labelSlice(g.Labels)
	} else {
		out, err = r.labelMap(g.Labels)
	}
	if err != nil {
		return nil, fmt.Errorf("goroutine %d: pprof labels at %#x: %w", g.ID, g.Labels, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// labelSlice reads a labelMap of Go 1.24+: {list []struct{key, value
// string}}.
func (r *Runtime) labelSlice(addr uint64) ([]Label, error) {
	var hdr [16]byte
	if _, err := r.Proc.ReadMemory(hdr[:], addr); err != nil {
		return nil, err
	}
	ptr, n := le64(hdr[:]), le64(hdr[8:])
	if n > maxLabels {
		return nil, fmt.Errorf("%d labels is implausible", n)
	}
	if n == 0 {
		return nil, nil
	}
	buf := make([]byte, 32*n)
	if _, err := r.Proc.ReadMemory(buf, ptr); err != nil {
		return nil, err
	}
	out := make([]Label, 0, n)
	for i := uint64(0); i < n; i++ {
		l, err := r.readLabel(buf[32*i:], buf[32*i+16:])
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

func (r *Runtime) readLabel(key, value []byte) (Label, error) {
	k, err := r.readStringData(le64(key), le64(key[8:]))
	if err != nil {
		return Label{}, err
	}
	v, err := r.readStringData(le64(value), le64(value[8:]))
	if err != nil {
		return Label{}, err
	}
	return Label{k, v}, nil
}

// The map[string]string of Go 1.21-1.23 labelMaps: runtime.hmap and its
// buckets (runtime/map.go), which DWARF describes only as the generic
// runtime.hmap; a bucket of string keys and values is fixed: 8 tophash
// bytes, 8 keys, 8 values, the overflow pointer.
const (
	hmapCountOff      = 0
	hmapFlagsOff      = 8
	hmapBOff          = 9
	hmapBucketsOff    = 16
	hmapOldBucketsOff = 24
	hmapSize          = 48
	hmapSameSizeGrow  = 8 // flags: growing to a map of the same size
	bucketEntries     = 8 // abi.MapBucketCount
	minTopHash        = 5 // tophash values below mark empty or evacuated slots
	stringBucketSize  = 8 + bucketEntries*16*2 + 8
	maxLabelMapB      = 10 // 2^10 buckets hold far more than maxLabels
)

// labelMap reads a labelMap of Go 1.23 and earlier: a pointer to a
// map[string]string, i.e. to a *hmap. During a map's growth an entry is in
// the old buckets until it is evacuated, then only in the new.
func (r *Runtime) labelMap(addr uint64) ([]Label, error) {
	hp, err := r.Proc.ReadUint64(addr)
	if err != nil {
		return nil, err
	}
	if hp == 0 {
		return nil, nil
	}
	off := func(field string, def int64) int64 {
		if o, err := r.Binary.Layout.Off("runtime.hmap", field); err == nil {
			return o
		}
		return def
	}
	var h [hmapSize]byte
	if _, err := r.Proc.ReadMemory(h[:], hp); err != nil {
		return nil, err
	}
	count := le64(h[off("count", hmapCountOff):])
	flags, b := h[off("flags", hmapFlagsOff)], h[off("B", hmapBOff)]
	buckets, old := le64(h[off("buckets", hmapBucketsOff):]), le64(h[off("oldbuckets", hmapOldBucketsOff):])
	if count > maxLabels || b > maxLabelMapB {
		return nil, fmt.Errorf("map of %d labels in 2^%d buckets is implausible", count, b)
	}
	if count == 0 {
		return nil, nil
	}
	seen := map[string]bool{}
	var out []Label
	add := func(base uint64, n uint64) error {
		buf := make([]byte, stringBucketSize)
		for i := uint64(0); i < n; i++ {
			at := base + i*stringBucketSize
			for hops := 0; at != 0; hops++ {
				if hops == maxLabelOverflow {
					return errors.New("overflow bucket chain too long")
				}
				if _, err := r.Proc.ReadMemory(buf, at); err != nil {
					return err
				}
				for j := 0; j < bucketEntries; j++ {
					if buf[j] < minTopHash {
						continue
					}
					k := 8 + 16*j
					v := 8 + bucketEntries*16 + 16*j
					l, err := r.readLabel(buf[k:], buf[v:])
					if err != nil {
						return err
					}
					if !seen[l.Key] {
						seen[l.Key] = true
						out = append(out, l)
					}
					if len(out) > maxLabels {
						return errors.New("more labels than the map counts")
					}
				}
				at = le64(buf[stringBucketSize-8:])
			}
		}
		return nil
	}
	if buckets == 0 {
		return nil, errors.New("no buckets")
	}
	if err := add(buckets, 1<<b); err != nil {
		return nil, err
	}
	if old != 0 {
		n := uint64(1) << b
		if flags&hmapSameSizeGrow == 0 && b > 0 {
			n >>= 1
		}
		if err := add(old, n); err != nil {
			return nil, err
		}
	}
	if uint64(len(out)) != count {
		return out, fmt.Errorf("map counts %d labels, %d found", count, len(out))
	}
	return out, nil
}

// Clock is a lower bound of the runtime's nanotime at the dump: the
// latest timestamp the runtime recorded. A goroutine has waited about
// Clock()-g.WaitSince when g.WaitSince is set.
func (r *Runtime) Clock() int64 { return r.nowEstimate() }
