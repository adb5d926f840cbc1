package goruntime

import (
	"errors"
	"fmt"
	"strings"
)

// offsets are the field offsets and constants the readers use, resolved
// once from the Layout (DWARF, or the fallback tables). An optional field
// a release lacks is -1.
type offsets struct {
	gSize                                                        int64
	gStackLo, gStackHi, gPanic, gDefer, gM                       int64
	gSchedSP, gSchedPC, gSchedBP, gSchedLR                       int64
	gSyscallSP, gSyscallPC, gStatus, gGoid, gWaitSince           int64
	gWaitReason, gLockedM, gSig, gSigcode0, gSigcode1            int64
	gSigPC, gParentGoid, gGopc, gStartPC, gLabels, gWaitingSudog int64
	gStktopsp                                                    int64

	mSize                                              int64
	mG0, mProcID, mGsignal, mCurG, mCaughtSig, mID     int64
	mThrowing, mDying, mIncgo, mIsExtra, mIsExtraInC   int64
	mNcgo, mAllLink, mLockedG, mP, mSpinning, mBlocked int64
	mMallocing, mLocks, mTLS, mPreemptOff, mLibcallsp  int64
	mVdsoSP, mVdsoPC, mMorebufSP, mMorebufPC, mSigmask int64
	mGoSigStackLo                                      int64

	panicArg, panicLink, panicRecovered, panicGoexit, panicRepanicked int64
	panicAborted, panicSize                                           int64

	gScan                                                           uint32
	gIdle, gRunnable, gRunning, gSyscall, gWaiting, gDead, gPreempt uint32
	gCopystack                                                      uint32
	gLeaked, gDeadExtra                                             int64 // -1 before Go 1.26
	throwTypeNone, throwTypeUser, throwTypeRuntime                  int64
}

// resolve fills o from l. Fields every supported release has are
// required; a missing one is an error naming it.
func (o *offsets) resolve(l *Layout) error {
	var missing []string
	need := func(typ, path string) int64 {
		v, err := l.Off(typ, path)
		if err != nil {
			missing = append(missing, typ+"."+path)
			return -1
		}
		return v
	}
	opt := func(typ, path string) int64 {
		v, err := l.Off(typ, path)
		if err != nil {
			return -1
		}
		return v
	}
	size := func(typ string) int64 {
		s, err := l.Struct(typ)
		if err != nil {
			missing = append(missing, typ)
			return 0
		}
		return s.Size
	}
	o.gSize = size("runtime.g")
	o.gStackLo, o.gStackHi = need("runtime.g", "stack.lo"), need("runtime.g", "stack.hi")
	o.gPanic, o.gDefer, o.gM = need("runtime.g", "_panic"), need("runtime.g", "_defer"), need("runtime.g", "m")
	o.gSchedSP, o.gSchedPC = need("runtime.g", "sched.sp"), need("runtime.g", "sched.pc")
	o.gSchedBP, o.gSchedLR = opt("runtime.g", "sched.bp"), opt("runtime.g", "sched.lr")
	o.gSyscallSP, o.gSyscallPC = need("runtime.g", "syscallsp"), need("runtime.g", "syscallpc")
	o.gStatus, o.gGoid = need("runtime.g", "atomicstatus"), need("runtime.g", "goid")
	o.gWaitSince, o.gWaitReason = opt("runtime.g", "waitsince"), need("runtime.g", "waitreason")
	o.gLockedM = opt("runtime.g", "lockedm")
	o.gSig, o.gSigcode0, o.gSigcode1, o.gSigPC = need("runtime.g", "sig"), need("runtime.g", "sigcode0"),
		need("runtime.g", "sigcode1"), need("runtime.g", "sigpc")
	o.gParentGoid, o.gGopc, o.gStartPC = opt("runtime.g", "parentGoid"), need("runtime.g", "gopc"), opt("runtime.g", "startpc")
	o.gLabels, o.gWaitingSudog = opt("runtime.g", "labels"), opt("runtime.g", "waiting")
	o.gStktopsp = opt("runtime.g", "stktopsp")

	o.mSize = size("runtime.m")
	o.mG0, o.mProcID, o.mGsignal = need("runtime.m", "g0"), need("runtime.m", "procid"), need("runtime.m", "gsignal")
	o.mCurG, o.mCaughtSig, o.mID = need("runtime.m", "curg"), opt("runtime.m", "caughtsig"), need("runtime.m", "id")
	o.mThrowing, o.mDying = opt("runtime.m", "throwing"), opt("runtime.m", "dying")
	o.mIncgo, o.mIsExtra, o.mIsExtraInC = opt("runtime.m", "incgo"), opt("runtime.m", "isextra"), opt("runtime.m", "isExtraInC")
	o.mNcgo, o.mAllLink, o.mLockedG = opt("runtime.m", "ncgo"), need("runtime.m", "alllink"), opt("runtime.m", "lockedg")
	o.mP, o.mSpinning, o.mBlocked = opt("runtime.m", "p"), opt("runtime.m", "spinning"), opt("runtime.m", "blocked")
	o.mMallocing, o.mLocks, o.mTLS = opt("runtime.m", "mallocing"), opt("runtime.m", "locks"), opt("runtime.m", "tls")
	o.mPreemptOff, o.mLibcallsp = opt("runtime.m", "preemptoff"), opt("runtime.m", "libcallsp")
	o.mVdsoSP, o.mVdsoPC = opt("runtime.m", "vdsoSP"), opt("runtime.m", "vdsoPC")
	o.mMorebufSP, o.mMorebufPC = opt("runtime.m", "morebuf.sp"), opt("runtime.m", "morebuf.pc")
	o.mSigmask = opt("runtime.m", "sigmask")
	o.mGoSigStackLo = opt("runtime.m", "goSigStack.stack.lo")

	o.panicSize = size("runtime._panic")
	o.panicArg, o.panicLink = need("runtime._panic", "arg"), need("runtime._panic", "link")
	o.panicRecovered, o.panicGoexit = need("runtime._panic", "recovered"), opt("runtime._panic", "goexit")
	o.panicRepanicked, o.panicAborted = opt("runtime._panic", "repanicked"), opt("runtime._panic", "aborted")

	if len(missing) > 0 {
		return fmt.Errorf("runtime layout lacks %s: %w", strings.Join(missing, ", "), ErrNoField)
	}
	if o.gSize <= 0 || o.gSize > 1<<14 || o.mSize <= 0 || o.mSize > 1<<16 {
		return errors.New("runtime layout: implausible size of runtime.g or runtime.m")
	}

	st := func(name string) uint32 {
		if v, ok := l.Const("runtime." + name); ok {
			return uint32(v)
		}
		return gStatusConsts[name]
	}
	o.gScan = st("_Gscan")
	o.gIdle, o.gRunnable, o.gRunning, o.gSyscall = st("_Gidle"), st("_Grunnable"), st("_Grunning"), st("_Gsyscall")
	o.gWaiting, o.gDead, o.gPreempt, o.gCopystack = st("_Gwaiting"), st("_Gdead"), st("_Gpreempted"), st("_Gcopystack")
	o.gLeaked, o.gDeadExtra = -1, -1
	for name, since := range gStatusConstsSince {
		v := int64(-1)
		if c, ok := l.Const("runtime." + name); ok {
			v = c
		} else if l.Version.AtLeast(since.minor) && !l.FromDWARF {
			v = int64(since.value)
		}
		switch name {
		case "_Gleaked":
			o.gLeaked = v
		case "_Gdeadextra":
			o.gDeadExtra = v
		}
	}
	o.throwTypeNone, o.throwTypeUser, o.throwTypeRuntime = 0, 1, 2
	if v, ok := l.Const("runtime.throwTypeUser"); ok {
		o.throwTypeUser = v
	}
	if v, ok := l.Const("runtime.throwTypeRuntime"); ok {
		o.throwTypeRuntime = v
	}
	return nil
}

// dead reports whether a goroutine status means the g is not a goroutine
// (unused, or parked for a future cgo callback: Go 1.26's _Gdeadextra).
func (o *offsets) dead(status uint32) bool {
	s := status &^ o.gScan
	return s == o.gDead || (o.gDeadExtra >= 0 && s == uint32(o.gDeadExtra))
}
