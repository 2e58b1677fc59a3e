/**
 * A netlink socket (libmnl): open, options, bind, send, receive, close.
 * The socket belongs to the network namespace of the thread that opened it,
 * for its whole life.
 *
 * @module
 */

import { ERRNO } from "../internal/_errno.ts";
import { errno, libc } from "../internal/_libc.ts";
import { libmnl } from "./_ffi.ts";
import { NetlinkError } from "./errors.ts";
import {
  NETLINK_CAP_ACK,
  NETLINK_EXT_ACK,
  NETLINK_GET_STRICT_CHK,
  NETLINK_ROUTE,
} from "./wire/constants.ts";

const SOL_SOCKET = 1;
const SOCK_CLOEXEC = 0o2000000;
const SO_RCVTIMEO = 20;
const SO_RCVBUF = 8;
const MSG_DONTWAIT = 0x40;

/** Receive buffer size: large enough for any rtnetlink dump datagram. */
const RECV_BUF = 65536;

/** Options for {@linkcode NetlinkSocket.open}. */
export interface SocketOptions {
  /** Multicast groups bitmask to join at bind (e.g. `1` = RTMGRP_LINK). */
  groups?: number;
  /** Receive timeout in milliseconds (default 10 000; 0 = none). */
  timeoutMs?: number;
}

/** `T`, unless it is a promise (a reader that must finish before the socket is released). */
type Sync<T> = T extends PromiseLike<unknown> ? never : T;

/** An open NETLINK_ROUTE socket. Close it with `using` or {@linkcode NetlinkSocket.close}. */
export class NetlinkSocket implements Disposable {
  #nl: Deno.PointerValue;
  #buf = new Uint8Array(RECV_BUF);
  /** The operation a pool thread is sending right now (see `sendInBackground`). */
  #inFlight: string | undefined;
  /** `close()` came while a pool thread held the socket: close when it is done. */
  #closeWhenIdle = false;
  /** The socket's port id (nlmsg_pid of replies). */
  readonly portid: number;
  /** The socket fd. */
  readonly fd: number;

  private constructor(nl: Deno.PointerObject, portid: number, fd: number) {
    this.#nl = nl;
    this.portid = portid;
    this.fd = fd;
  }

  /** Open and bind a socket in the calling thread's network namespace. */
  static open(options: SocketOptions = {}): NetlinkSocket {
    const mnl = libmnl();
    const nl = mnl.mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (!nl) throw new NetlinkError("mnl_socket_open2", errno());
    try {
      const one = new Uint8Array(new Int32Array([1]).buffer);
      // Best effort: older kernels lack these options; errors stay plain then.
      mnl.mnl_socket_setsockopt(nl, NETLINK_EXT_ACK, one, 4);
      mnl.mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, one, 4);
      mnl.mnl_socket_setsockopt(nl, NETLINK_GET_STRICT_CHK, one, 4);
      if (mnl.mnl_socket_bind(nl, options.groups ?? 0, 0) < 0) {
        throw new NetlinkError("mnl_socket_bind", errno());
      }
      const fd = mnl.mnl_socket_get_fd(nl);
      const timeoutMs = options.timeoutMs ?? 10_000;
      if (timeoutMs > 0) {
        const tv = new BigInt64Array([
          BigInt(Math.floor(timeoutMs / 1000)),
          BigInt((timeoutMs % 1000) * 1000),
        ]);
        libc().setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, new Uint8Array(tv.buffer), 16);
      }
      if (options.groups) {
        const size = new Uint8Array(new Int32Array([1 << 20]).buffer);
        libc().setsockopt(fd, SOL_SOCKET, SO_RCVBUF, size, 4);
      }
      return new NetlinkSocket(nl, mnl.mnl_socket_get_portid(nl), fd);
    } catch (err) {
      mnl.mnl_socket_close(nl);
      throw err;
    }
  }

  /** Whether a pool thread is sending on it (`sendInBackground`). */
  get busy(): boolean {
    return this.#inFlight !== undefined;
  }

  /** Whether {@linkcode NetlinkSocket.close} has run. */
  get closed(): boolean {
    return this.#nl === null;
  }

  #ptr(): Deno.PointerObject {
    if (!this.#nl) throw new Error("netlink socket is closed");
    return this.#nl;
  }

  /**
   * Refuse a use of the socket while a pool thread sends on it: a request
   * made meanwhile would read the other's reply (or lose its own ACK).
   */
  #idle(op: string): void {
    if (this.#inFlight) {
      throw new NetlinkError(
        op,
        ERRNO.EBUSY,
        `the socket is busy with a background ${this.#inFlight}`,
      );
    }
  }

  /** Send one whole message (the full length, always). */
  send(msg: Uint8Array<ArrayBuffer>, op: string): void {
    this.#idle(op);
    const n = Number(libmnl().mnl_socket_sendto(this.#ptr(), msg, BigInt(msg.length)));
    if (n < 0) throw new NetlinkError(op, errno());
    if (n !== msg.length) {
      throw new NetlinkError(op, ERRNO.EIO, `short send: ${n} of ${msg.length} bytes`);
    }
  }

  /**
   * Send one whole message from a pool thread (see `requestInBackground` in
   * request.ts), then run `then` (the reply's reading) on this thread. The
   * bytes are copied off the V8 heap first: the pool thread reads them while
   * JS runs on. errno is the pool thread's, so a failed send (one the kernel
   * did not take: nothing was done) is repeated here, on this thread, where a
   * second failure reports its errno. A `close()` meanwhile waits for `then`
   * too: the caller learns what the kernel did with its request. `then` is
   * synchronous (its type refuses a promise): the socket is the caller's
   * only until it returns.
   */
  async sendInBackground<T>(msg: Uint8Array, op: string, then: () => Sync<T>): Promise<T> {
    this.#idle(op);
    const bytes = new Uint8Array(new ArrayBuffer(msg.length));
    bytes.set(msg);
    const nl = this.#ptr();
    this.#inFlight = op;
    try {
      let n: number;
      try {
        n = Number(
          await libmnl().mnl_socket_sendto_in_background(nl, bytes, BigInt(bytes.length)),
        );
      } finally {
        this.#inFlight = undefined;
      }
      if (n < 0) {
        this.send(bytes, op);
      } else if (n !== bytes.length) {
        throw new NetlinkError(op, ERRNO.EIO, `short send: ${n} of ${bytes.length} bytes`);
      }
      return then() as T;
    } finally {
      if (this.#closeWhenIdle) this.close();
    }
  }

  /** Receive one datagram (blocks up to the receive timeout). */
  recv(op: string): Uint8Array {
    this.#idle(op);
    const n = Number(
      libmnl().mnl_socket_recvfrom(this.#ptr(), this.#buf, BigInt(this.#buf.length)),
    );
    if (n < 0) {
      const e = errno();
      throw new NetlinkError(
        op,
        e === ERRNO.EAGAIN ? ERRNO.ETIMEDOUT : e,
        e === ERRNO.EAGAIN ? "no reply from the kernel" : undefined,
      );
    }
    return this.#buf.subarray(0, n);
  }

  /** Receive one datagram if one is queued; `undefined` otherwise. */
  tryRecv(op: string): Uint8Array | undefined {
    this.#idle(op);
    const n = Number(libc().recv(this.fd, this.#buf, BigInt(this.#buf.length), MSG_DONTWAIT));
    if (n < 0) {
      const e = errno();
      if (e === ERRNO.EAGAIN) return undefined;
      throw new NetlinkError(op, e);
    }
    return this.#buf.subarray(0, n);
  }

  /**
   * Close the socket. Idempotent. While a pool thread sends on it, the close
   * waits for that send to return (the thread holds the socket's memory) and
   * for the reply to be read.
   */
  close(): void {
    if (this.#inFlight) {
      this.#closeWhenIdle = true;
      return;
    }
    if (this.#nl) {
      libmnl().mnl_socket_close(this.#nl);
      this.#nl = null;
    }
  }

  /** Same as {@linkcode NetlinkSocket.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
