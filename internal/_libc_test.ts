import assert from "node:assert/strict";
import { ERRNO } from "./_errno.ts";
import {
  cstr,
  errno,
  libc,
  lstatIfPresent,
  O_CLOEXEC,
  PollFds,
  POLLIN,
  POLLOUT,
  removeDirIfEmpty,
} from "./_libc.ts";
import { LibraryLoadError, openLibrary } from "./_native.ts";

Deno.test("errno() is the errno of the libc call that just failed", () => {
  assert.equal(libc().close(-1), -1);
  assert.equal(errno(), ERRNO.EBADF);
  assert.equal(libc().open(cstr("/nonexistent/macvtap-libc-test"), 0), -1);
  assert.equal(errno(), ERRNO.ENOENT);
});

Deno.test("cstr() is the UTF-8 bytes and one NUL", () => {
  assert.deepEqual([...cstr("é0")], [0xc3, 0xa9, 0x30, 0]);
  assert.deepEqual([...cstr("")], [0]);
});

Deno.test("openLibrary() throws LibraryLoadError naming the path and the env override", () => {
  const env = "MACVTAP_TEST_LIBNOTHING";
  Deno.env.set(env, "/nonexistent/libnothing.so.9");
  try {
    assert.throws(
      () => openLibrary(env, "libc.so.6", { getpid: { parameters: [], result: "i32" } }),
      (e: unknown) =>
        e instanceof LibraryLoadError && /libnothing\.so\.9/.test(e.message) &&
        e.message.includes(env) && e.cause instanceof Error,
    );
  } finally {
    Deno.env.delete(env);
  }
});

Deno.test("PollFds reports a pipe's read end readable only once written", async () => {
  const fds = new Int32Array(new ArrayBuffer(8));
  assert.equal(libc().pipe2(new Uint8Array(fds.buffer), O_CLOEXEC), 0);
  const [r, w] = [fds[0]!, fds[1]!];
  try {
    const p = new PollFds(3);
    p.set(0, r, POLLIN);
    p.set(1, w, POLLOUT);
    assert.equal(await p.poll(0), 1, "only the write end is ready");
    assert.equal(p.revents(0), 0);
    assert.equal(p.revents(1) & POLLOUT, POLLOUT);
    assert.equal(p.revents(2), 0, "an unset slot is skipped");
    assert.equal(Number(libc().write(w, Uint8Array.of(1), 1n)), 1);
    p.set(0, r, POLLIN);
    p.set(1, -1, 0);
    assert.equal(await p.poll(1000), 1);
    assert.equal(p.revents(0) & POLLIN, POLLIN);
  } finally {
    libc().close(r);
    libc().close(w);
  }
});

Deno.test("lstatIfPresent() is undefined for a missing path, the lstat otherwise, without following a symlink", () => {
  const dir = Deno.makeTempDirSync({ prefix: "libc-test-" });
  try {
    assert.equal(lstatIfPresent(`${dir}/nope`), undefined);
    assert.equal(lstatIfPresent(`${dir}/nope/deeper`), undefined, "a missing parent");
    Deno.writeTextFileSync(`${dir}/file`, "x");
    assert.equal(lstatIfPresent(`${dir}/file`)?.isFile, true);
    assert.equal(lstatIfPresent(`${dir}/file/under`), undefined, "ENOTDIR is not there either");
    Deno.symlinkSync(`${dir}/nope`, `${dir}/dangling`);
    assert.equal(lstatIfPresent(`${dir}/dangling`)?.isSymlink, true, "the link itself");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("removeDirIfEmpty() removes an empty directory and leaves anything else", () => {
  const dir = Deno.makeTempDirSync({ prefix: "libc-test-" });
  try {
    Deno.mkdirSync(`${dir}/empty`);
    Deno.mkdirSync(`${dir}/full`);
    Deno.writeTextFileSync(`${dir}/full/f`, "x");
    Deno.writeTextFileSync(`${dir}/file`, "x");
    assert.equal(removeDirIfEmpty(`${dir}/empty`), true);
    assert.equal(lstatIfPresent(`${dir}/empty`), undefined);
    assert.equal(removeDirIfEmpty(`${dir}/full`), false);
    assert.equal(Deno.readTextFileSync(`${dir}/full/f`), "x", "its content stays");
    assert.equal(removeDirIfEmpty(`${dir}/file`), false, "a file is not removed");
    assert.equal(removeDirIfEmpty(`${dir}/gone`), false);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
