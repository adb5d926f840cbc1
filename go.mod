module github.com/coreexplain/coreexplain

go 1.26.0

require (
	github.com/go-delve/delve v1.27.2
	github.com/klauspost/compress v1.20.3
	github.com/pierrec/lz4/v4 v4.1.33
	github.com/spf13/pflag v1.1.0
	github.com/ulikunitz/xz v0.5.17
	golang.org/x/arch v0.32.0
	golang.org/x/sys v0.46.0
)

require (
	github.com/cilium/ebpf v0.22.0 // indirect
	golang.org/x/telemetry v0.0.0-20241106142447-58a1122356f5 // indirect
)
