/**
 * Regenerates the golden netlink captures in this folder: what iproute2 sends
 * and what the kernel answers, recorded with strace inside a throwaway
 * namespace (`nlt-cap-<pid>`), never touching the root namespace's links.
 *
 * Run as root: `deno run -A tests/testdata/capture.ts`
 *
 * Each `<name>.hex` holds one netlink message (header included) as hex, 16
 * bytes a line, after `#` comment lines naming the command. strace prints the
 * `nlmsghdr` decoded and the rest as `\x..` escapes (`-xx -X raw`); an
 * `NLMSG_ERROR` reply is printed as a structure, rebuilt here byte by byte.
 *
 * @module
 */

const HERE = new URL(".", import.meta.url).pathname;

interface Msg {
  syscall: string;
  type: number;
  flags: number;
  bytes: Uint8Array;
}

function hexBytes(escaped: string): number[] {
  return [...escaped.matchAll(/\\x([0-9a-f]{2})/g)].map((m) => parseInt(m[1]!, 16));
}

function u32(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}
function u16(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff];
}

const HDR =
  /\{nlmsg_len=(\d+), nlmsg_type=(0x[0-9a-f]+|\d+), nlmsg_flags=(0x[0-9a-f]+|\d+), nlmsg_seq=(\d+), nlmsg_pid=(-?\d+)\}/y;

function header(len: number, type: number, flags: number, seq: number, pid: number): number[] {
  return [...u32(len), ...u16(type), ...u16(flags), ...u32(seq), ...u32(pid >>> 0)];
}

/** Messages in one strace line (sendmsg/recvmsg with a netlink iov). */
function parseLine(line: string): Msg[] {
  // With -f, strace prefixes each line with the pid.
  const syscall = /^(?:\d+\s+)?(\w+)\(/.exec(line)?.[1] ?? "";
  const out: Msg[] = [];
  const re = new RegExp(HDR.source, "g");
  // Only top-level messages: those not inside an `error=…, msg=` structure.
  for (const m of line.matchAll(re)) {
    const before = line.slice(Math.max(0, m.index - 6), m.index);
    if (before.endsWith("msg=[") || before.endsWith("msg=")) continue;
    const [len, type, flags, seq, pid] = m.slice(1, 6).map((x) => Number(x)) as [
      number,
      number,
      number,
      number,
      number,
    ];
    const rest = line.slice(m.index + m[0].length);
    let payload: number[];
    const err = /^, \[?\{error=(-?\d+), msg=\[(\{[^}]*\}), "((?:\\x[0-9a-f]{2})*)"\]\}(.*)$/.exec(
      rest,
    );
    if (type === 2 && err) {
      const inner = new RegExp(HDR.source).exec(err[2]!)!;
      const [ilen, itype, iflags, iseq, ipid] = inner.slice(1, 6).map(Number) as [
        number,
        number,
        number,
        number,
        number,
      ];
      payload = [...u32(Number(err[1])), ...header(ilen, itype, iflags, iseq, ipid)];
      payload.push(...hexBytes(err[3]!));
      while (payload.length % 4) payload.push(0);
      for (
        const a of err[4]!.matchAll(
          /\[\{nla_len=(\d+), nla_type=(0x[0-9a-f]+|\d+)\}, "((?:\\x[0-9a-f]{2})*)"/g,
        )
      ) {
        const data = hexBytes(a[3]!);
        payload.push(...u16(Number(a[1])), ...u16(Number(a[2])), ...data);
        while (payload.length % 4) payload.push(0);
      }
    } else {
      const s = /^, "((?:\\x[0-9a-f]{2})*)"/.exec(rest);
      payload = s ? hexBytes(s[1]!) : [];
    }
    const bytes = [...header(len, type, flags, seq, pid), ...payload];
    // ACKs and other structures strace decodes are skipped: not needed here.
    if (bytes.length !== len && bytes.length !== ((len + 3) & ~3)) continue;
    out.push({ syscall, type, flags, bytes: Uint8Array.from(bytes.slice(0, len)) });
  }
  return out;
}

function run(args: string[]): string {
  const r = new Deno.Command(args[0]!, { args: args.slice(1), stdout: "piped", stderr: "piped" })
    .outputSync();
  const dec = new TextDecoder();
  if (!r.success) throw new Error(`${args.join(" ")}: ${dec.decode(r.stderr)}`);
  return dec.decode(r.stdout);
}

function trace(ns: string, args: string[]): Msg[] {
  const log = Deno.makeTempFileSync();
  try {
    new Deno.Command("strace", {
      args: ["-f", "-xx", "-X", "raw", "-s", "65536", "-e", "trace=sendmsg,recvmsg", "-o", log]
        .concat(["ip", "-n", ns, ...args]),
      stdout: "null",
      stderr: "null",
    }).outputSync();
    return Deno.readTextFileSync(log).split("\n").flatMap(parseLine);
  } finally {
    Deno.removeSync(log);
  }
}

function write(name: string, what: string, command: string, msg: Msg): void {
  const lines = [
    `# ${what}`,
    `# $ ${command}`,
    `# ${
      run(["ip", "-V"]).trim()
    }, Linux ${Deno.osRelease()}; regenerate: tests/testdata/capture.ts`,
  ];
  for (let i = 0; i < msg.bytes.length; i += 16) {
    lines.push(
      Array.from(msg.bytes.subarray(i, i + 16), (b) => b.toString(16).padStart(2, "0")).join(" "),
    );
  }
  Deno.writeTextFileSync(`${HERE}${name}.hex`, lines.join("\n") + "\n");
}

/** Capture `ip args` and keep the last message of `type` from `syscall`. */
function capture(
  ns: string,
  name: string,
  args: string[],
  pick: { syscall: "sendmsg" | "recvmsg"; type: number; has?: string },
  what: string,
): void {
  const has = pick.has ? new TextEncoder().encode(pick.has) : undefined;
  const found = trace(ns, args).filter((m) =>
    m.syscall === pick.syscall && m.type === pick.type &&
    (!has || indexOf(m.bytes, has) >= 0)
  );
  const msg = found.at(-1);
  if (!msg) throw new Error(`no ${pick.syscall} type ${pick.type} for ip ${args.join(" ")}`);
  write(name, what, `ip ${args.join(" ")}`, msg);
}

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

if (import.meta.main) {
  const ns = `nlt-cap-${Deno.pid}`;
  run(["ip", "netns", "add", ns]);
  try {
    const ip = (...a: string[]) => run(["ip", "-n", ns, ...a]);
    ip("link", "add", "eth1", "type", "veth", "peer", "name", "eth1p");
    ip("link", "set", "eth1", "up");
    ip("link", "set", "eth1p", "up");
    const send = (type: number) => ({ syscall: "sendmsg" as const, type });
    const NEWLINK = 16, NEWADDR = 20, DELADDR = 21, NEWROUTE = 24, DELROUTE = 25;
    capture(
      ns,
      "link_add_macvtap",
      "link add link eth1 name mv0 type macvtap mode bridge".split(" "),
      send(NEWLINK),
      "RTM_NEWLINK creating a macvtap (bridge mode) on eth1",
    );
    capture(
      ns,
      "link_add_macvlan",
      "link add link eth1 name mvl0 type macvlan mode private".split(" "),
      send(NEWLINK),
      "RTM_NEWLINK creating a macvlan (private mode) on eth1",
    );
    capture(
      ns,
      "link_add_veth",
      "link add va type veth peer name vb".split(" "),
      send(NEWLINK),
      "RTM_NEWLINK creating a veth pair",
    );
    capture(
      ns,
      "link_add_bridge",
      "link add br0 type bridge".split(" "),
      send(NEWLINK),
      "RTM_NEWLINK creating a bridge",
    );
    capture(ns, "link_set_up", "link set va up".split(" "), send(NEWLINK), "RTM_NEWLINK: set up");
    capture(
      ns,
      "link_set_mtu",
      "link set va mtu 1400".split(" "),
      send(NEWLINK),
      "RTM_NEWLINK: set MTU",
    );
    capture(
      ns,
      "link_set_mac",
      "link set vb address 02:00:00:00:00:01".split(" "),
      send(NEWLINK),
      "RTM_NEWLINK: set MAC address",
    );
    capture(
      ns,
      "link_set_name",
      "link set vb name vc".split(" "),
      send(NEWLINK),
      "RTM_NEWLINK: rename",
    );
    capture(
      ns,
      "addr_add_v4",
      "addr add 10.1.2.3/24 dev eth1".split(" "),
      send(NEWADDR),
      "RTM_NEWADDR: IPv4 address",
    );
    capture(
      ns,
      "addr_add_v6",
      "-6 addr add fd00::5/64 dev eth1 nodad".split(" "),
      send(NEWADDR),
      "RTM_NEWADDR: IPv6 address without DAD",
    );
    capture(
      ns,
      "route_add_gw",
      "route add 10.0.0.0/8 via 10.1.2.1 dev eth1 metric 100".split(" "),
      send(NEWROUTE),
      "RTM_NEWROUTE: IPv4 route via a gateway with a metric",
    );
    capture(
      ns,
      "route_add_table",
      "route add 10.9.0.0/16 dev eth1 table 1000".split(" "),
      send(NEWROUTE),
      "RTM_NEWROUTE: link-scoped route in table 1000 (>255: RTA_TABLE)",
    );
    capture(
      ns,
      "route_add_v6",
      "-6 route add fd01::/64 via fd00::1 dev eth1 metric 200".split(" "),
      send(NEWROUTE),
      "RTM_NEWROUTE: IPv6 route via a gateway",
    );
    capture(
      ns,
      "route_del_gw",
      "route del 10.0.0.0/8 via 10.1.2.1 dev eth1 metric 100".split(" "),
      send(DELROUTE),
      "RTM_DELROUTE of route_add_gw",
    );
    capture(
      ns,
      "addr_del_v4",
      "addr del 10.1.2.3/24 dev eth1".split(" "),
      send(DELADDR),
      "RTM_DELADDR: IPv4 address",
    );
    capture(
      ns,
      "getlink_macvtap_reply",
      "-d link show mv0".split(" "),
      { syscall: "recvmsg", type: NEWLINK, has: "mv0\0" },
      "Kernel reply (RTM_NEWLINK) to RTM_GETLINK for macvtap mv0",
    );
    // iproute2 does not set NETLINK_CAP_ACK, so the request comes back whole.
    capture(
      ns,
      "error_mtu_reply",
      "link set eth1 mtu 70000".split(" "),
      { syscall: "recvmsg", type: 2 },
      "Kernel NLMSG_ERROR (EINVAL) with extended ACK text, for an MTU above the maximum",
    );
  } finally {
    run(["ip", "netns", "del", ns]);
  }
}
