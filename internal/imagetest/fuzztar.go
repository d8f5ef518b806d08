package imagetest

import (
	"fmt"
	"strconv"
	"strings"
)

// FixTarChecksums returns a copy of b in which every tar header block has
// a correct checksum. Fuzz targets pass their input through it: the fuzzer
// mutates bytes, and a mutated header would otherwise stop archive/tar at
// its checksum check, so that the unpacker behind it never saw the
// mutation. Headers are found as a reader finds them: a header block, then
// its contents rounded up to 512 bytes; an all-zero block ends the walk.
func FixTarChecksums(b []byte) []byte {
	out := append([]byte(nil), b...)
	for off := 0; off+512 <= len(out); {
		blk := out[off : off+512]
		if isZero(blk) {
			break
		}
		sum := 0
		for i, c := range blk {
			if i >= 148 && i < 156 {
				c = ' '
			}
			sum += int(c)
		}
		copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
		size := octal(blk[124:136])
		if size < 0 || size > int64(len(out)) {
			break
		}
		off += 512 + int((size+511)/512*512)
	}
	return out
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// octal reads a tar numeric field, or -1.
func octal(f []byte) int64 {
	s := strings.Trim(string(f), " \x00")
	if s == "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 8, 64)
	if err != nil {
		return -1
	}
	return n
}
