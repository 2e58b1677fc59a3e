// A kubelet stand-in on grpc-go (Debian's golang-google-grpc-dev, GOPATH
// mode), for the device plugin tests: kubelet itself is grpc-go, and closes
// connections the way grpc-go does, not the way grpc-js does.
//
// Like kubelet's device manager it serves Registration on <dir>/kubelet.sock,
// dials the plugin's socket back inside Register, calls
// GetDevicePluginOptions, answers, then keeps a ListAndWatch stream open.
// Messages are raw bytes (a codec that passes []byte through) with the few
// protobuf fields hand-encoded here: no generated code, no module proxy.
//
// Driven over stdin, one command per line; reports JSON lines on stdout:
//
//	allocate ENDPOINT ID...       -> {"event":"allocated","endpoint":…,"hostPaths":[…]} | {"event":"error",…}
//	restart goaway|graceful|abrupt [only-sock]
//	                              graceful (grpc-go 1.33, Debian 12): cancel the ListAndWatch streams
//	                              (RST_STREAM CANCEL), close the dial-back connections, Stop the
//	                              kubelet.sock server (as kubelet does); goaway (newer grpc-go, as
//	                              kubelet does today): the same plus an HTTP/2 GOAWAY(NO_ERROR) written
//	                              on each dial-back connection after the RST_STREAM, before it
//	                              closes; abrupt: Stop and close without cancelling.
//	                              Then wipe the sockets in the directory (only kubelet.sock with
//	                              only-sock) and serve a new kubelet.sock.
//	quit                          graceful stop, exit 0
//
// Events: listening, registered, devices, stream-end, allocated, error.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// rawCodec passes *[]byte through: the wire bytes are ours to encode.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: %T is not *[]byte", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: %T is not *[]byte", v)
	}
	*b = append([]byte(nil), data...)
	return nil
}

// Name keeps the content type application/grpc+proto.
func (rawCodec) Name() string   { return "proto" }
func (rawCodec) String() string { return "proto" }

var _ encoding.Codec = rawCodec{}

// ---- protobuf wire, the few fields we need ----

func putVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func putBytes(b []byte, field int, data []byte) []byte {
	b = putVarint(b, uint64(field)<<3|2)
	b = putVarint(b, uint64(len(data)))
	return append(b, data...)
}

type pbField struct {
	num  int
	wire int
	val  uint64
	data []byte
}

func parse(b []byte) ([]pbField, error) {
	var out []pbField
	for len(b) > 0 {
		key, n := varint(b)
		if n <= 0 {
			return nil, errors.New("bad key")
		}
		b = b[n:]
		f := pbField{num: int(key >> 3), wire: int(key & 7)}
		switch f.wire {
		case 0:
			v, n := varint(b)
			if n <= 0 {
				return nil, errors.New("bad varint")
			}
			f.val, b = v, b[n:]
		case 2:
			l, n := varint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return nil, errors.New("bad length")
			}
			f.data, b = b[n:n+int(l)], b[n+int(l):]
		case 1:
			if len(b) < 8 {
				return nil, errors.New("short fixed64")
			}
			b = b[8:]
		case 5:
			if len(b) < 4 {
				return nil, errors.New("short fixed32")
			}
			b = b[4:]
		default:
			return nil, fmt.Errorf("wire type %d", f.wire)
		}
		out = append(out, f)
	}
	return out, nil
}

func varint(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * uint(i))
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, -1
}

func strings1(b []byte, num int) []string {
	fs, _ := parse(b)
	var out []string
	for _, f := range fs {
		if f.num == num && f.wire == 2 {
			out = append(out, string(f.data))
		}
	}
	return out
}

func messages(b []byte, num int) [][]byte {
	fs, _ := parse(b)
	var out [][]byte
	for _, f := range fs {
		if f.num == num && f.wire == 2 {
			out = append(out, f.data)
		}
	}
	return out
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// ---- output ----

var outMu sync.Mutex

func emit(ev map[string]interface{}) {
	outMu.Lock()
	defer outMu.Unlock()
	b, _ := json.Marshal(ev)
	os.Stdout.Write(append(b, '\n'))
}

// ---- the kubelet ----

type plugin struct {
	endpoint string
	conn     *grpc.ClientConn
	raw      *goawayConn
	cancel   context.CancelFunc
	gen      int
}

// goawayConn is the dial-back socket. grpc-go 1.33's ClientConn.Close only
// closes it; newer grpc-go (1.56+) first sends GOAWAY. With goAway set,
// Close writes that frame (between whole writes of grpc-go's framer).
type goawayConn struct {
	net.Conn
	mu     sync.Mutex
	goAway bool
}

func (c *goawayConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *goawayConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.goAway {
		// Frame header: length 8, type GOAWAY (7), flags 0, stream 0; last stream 0, NO_ERROR.
		c.Conn.Write([]byte{0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	}
	return c.Conn.Close()
}

type kubelet struct {
	dir      string
	gen      int // incarnation: bumped by every serve
	mu       sync.Mutex
	server   *grpc.Server
	plugins  map[string]*plugin
	replaced []*plugin
}

func (k *kubelet) dial(endpoint string) (*grpc.ClientConn, *goawayConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var raw *goawayConn
	conn, err := grpc.DialContext(ctx, filepath.Join(k.dir, endpoint),
		grpc.WithInsecure(), grpc.WithBlock(), grpc.WithAuthority("localhost"),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "unix", addr)
			if err != nil {
				return nil, err
			}
			raw = &goawayConn{Conn: c}
			return raw, nil
		}))
	return conn, raw, err
}

// incarnation is one kubelet.sock server; events carry its gen.
type incarnation struct {
	k   *kubelet
	gen int
}

func (k *kubelet) register(ctx context.Context, req []byte, gen int) (interface{}, error) {
	version := first(strings1(req, 1))
	endpoint := first(strings1(req, 2))
	resource := first(strings1(req, 3))
	if version != "v1beta1" {
		return nil, fmt.Errorf("unsupported version %q", version)
	}
	if !strings.Contains(resource, "/") || endpoint == "" || strings.Contains(endpoint, "/") {
		return nil, fmt.Errorf("invalid resource %q or endpoint %q", resource, endpoint)
	}
	conn, raw, err := k.dial(endpoint)
	if err != nil {
		return nil, fmt.Errorf("dial back %s: %v", endpoint, err)
	}
	octx, ocancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ocancel()
	empty, opts := []byte{}, []byte{}
	if err := conn.Invoke(octx, "/v1beta1.DevicePlugin/GetDevicePluginOptions", &empty, &opts); err != nil {
		conn.Close()
		return nil, fmt.Errorf("GetDevicePluginOptions: %v", err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	p := &plugin{endpoint: endpoint, conn: conn, raw: raw, cancel: scancel, gen: gen}
	k.mu.Lock()
	// As kubelet's registerClient: the new client replaces the old one for
	// new calls; the old connection is not closed (calls in flight finish),
	// it goes when its stream ends or the kubelet stops.
	if old := k.plugins[endpoint]; old != nil {
		k.replaced = append(k.replaced, old)
	}
	k.plugins[endpoint] = p
	k.mu.Unlock()
	go k.listAndWatch(sctx, p)
	emit(map[string]interface{}{"event": "registered", "resource": resource, "endpoint": endpoint,
		"gen": gen, "at": time.Now().UnixNano()})
	out := []byte{}
	return &out, nil
}

func (k *kubelet) listAndWatch(ctx context.Context, p *plugin) {
	stream, err := p.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true},
		"/v1beta1.DevicePlugin/ListAndWatch")
	if err == nil {
		empty := []byte{}
		if err = stream.SendMsg(&empty); err == nil {
			err = stream.CloseSend()
		}
	}
	for err == nil {
		var msg []byte
		if err = stream.RecvMsg(&msg); err != nil {
			break
		}
		var devs []map[string]string
		for _, d := range messages(msg, 1) {
			devs = append(devs, map[string]string{"id": first(strings1(d, 1)), "health": first(strings1(d, 2))})
		}
		emit(map[string]interface{}{"event": "devices", "endpoint": p.endpoint, "gen": p.gen,
			"devices": devs})
	}
	emit(map[string]interface{}{"event": "stream-end", "endpoint": p.endpoint, "error": err.Error()})
}

func (k *kubelet) allocate(endpoint string, ids []string) {
	k.mu.Lock()
	p := k.plugins[endpoint]
	k.mu.Unlock()
	if p == nil {
		emit(map[string]interface{}{"event": "error", "cmd": "allocate", "error": "not registered: " + endpoint})
		return
	}
	var creq []byte
	for _, id := range ids {
		creq = putBytes(creq, 1, []byte(id))
	}
	req := putBytes(nil, 1, creq)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var resp []byte
	if err := p.conn.Invoke(ctx, "/v1beta1.DevicePlugin/Allocate", &req, &resp); err != nil {
		emit(map[string]interface{}{"event": "error", "cmd": "allocate", "error": err.Error()})
		return
	}
	var paths []string
	for _, c := range messages(resp, 1) {
		for _, d := range messages(c, 3) {
			paths = append(paths, first(strings1(d, 2)))
		}
	}
	emit(map[string]interface{}{"event": "allocated", "endpoint": endpoint, "hostPaths": paths})
}

var registrationDesc = grpc.ServiceDesc{
	ServiceName: "v1beta1.Registration",
	HandlerType: (*interface{})(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Register",
		Handler: func(srv interface{}, ctx context.Context, dec func(interface{}) error,
			_ grpc.UnaryServerInterceptor) (interface{}, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			inc := srv.(*incarnation)
			return inc.k.register(ctx, in, inc.gen)
		},
	}},
	Streams:  []grpc.StreamDesc{},
	Metadata: "api.proto",
}

// serve wipes the directory's sockets (kubelet's CleanupPluginDirectory) and serves kubelet.sock.
func (k *kubelet) serve(onlySock bool) error {
	entries, err := os.ReadDir(k.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() || e.Name() == "kubelet_internal_checkpoint" {
			continue
		}
		if onlySock && e.Name() != "kubelet.sock" {
			continue
		}
		os.Remove(filepath.Join(k.dir, e.Name()))
	}
	l, err := net.Listen("unix", filepath.Join(k.dir, "kubelet.sock"))
	if err != nil {
		return err
	}
	s := grpc.NewServer(grpc.CustomCodec(rawCodec{}))
	k.mu.Lock()
	k.gen++
	gen := k.gen
	k.server = s
	k.mu.Unlock()
	s.RegisterService(&registrationDesc, &incarnation{k: k, gen: gen})
	go s.Serve(l)
	emit(map[string]interface{}{"event": "listening", "gen": gen, "at": time.Now().UnixNano()})
	return nil
}

func (k *kubelet) stop(mode string) {
	graceful := mode == "graceful" || mode == "goaway"
	k.mu.Lock()
	plugins := k.replaced
	for _, p := range k.plugins {
		plugins = append(plugins, p)
	}
	k.plugins = map[string]*plugin{}
	k.replaced = nil
	s := k.server
	k.server = nil
	k.mu.Unlock()
	for _, p := range plugins {
		if graceful {
			p.cancel() // RST_STREAM(CANCEL) on ListAndWatch
		}
		if mode == "goaway" && p.raw != nil {
			time.Sleep(20 * time.Millisecond) // let the RST_STREAM go out first
			p.raw.mu.Lock()
			p.raw.goAway = true
			p.raw.mu.Unlock()
		}
		p.conn.Close()
	}
	if s != nil {
		// kubelet's device-plugin server stops with Stop(), never GracefulStop:
		// the graceful part of a kubelet restart is the client side above.
		s.Stop()
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: kubelet_go DIR")
		os.Exit(2)
	}
	k := &kubelet{dir: os.Args[1], plugins: map[string]*plugin{}}
	if err := k.serve(false); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "allocate":
			if len(f) < 3 {
				emit(map[string]interface{}{"event": "error", "cmd": "allocate", "error": "usage"})
				continue
			}
			k.allocate(f[1], f[2:])
		case "restart":
			mode := "abrupt"
			if len(f) > 1 {
				mode = f[1]
			}
			k.stop(mode)
			if err := k.serve(len(f) > 2 && f[2] == "only-sock"); err != nil {
				emit(map[string]interface{}{"event": "error", "cmd": "restart", "error": err.Error()})
			}
		case "quit":
			k.stop("graceful")
			return
		default:
			emit(map[string]interface{}{"event": "error", "cmd": f[0], "error": "unknown command"})
		}
	}
	k.stop("graceful")
}
