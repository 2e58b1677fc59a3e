import assert from "node:assert/strict";
import {
  DumpInterruptedError,
  errnoName,
  isErrno,
  LinkNotFoundError,
  linkText,
  naming,
  NetlinkError,
  NetnsNotFoundError,
} from "./errors.ts";

Deno.test("errnoName() names Linux errnos and falls back to E<n>", () => {
  assert.equal(errnoName(17), "EEXIST");
  assert.equal(errnoName(19), "ENODEV");
  assert.equal(errnoName(34), "ERANGE");
  assert.equal(errnoName(16), "EBUSY");
  assert.equal(errnoName(999), "E999");
});

Deno.test("NetlinkError carries errno, code, op and extAck in its message", async (t) => {
  await t.step("plain", () => {
    const e = new NetlinkError("RTM_NEWLINK", 17);
    assert.ok(e instanceof Error);
    assert.equal(e.name, "NetlinkError");
    assert.equal(e.errno, 17);
    assert.equal(e.code, "EEXIST");
    assert.equal(e.op, "RTM_NEWLINK");
    assert.equal(e.extAck, undefined);
    assert.equal(e.message, "RTM_NEWLINK: File exists (EEXIST)");
  });
  await t.step("with extended ACK and context", () => {
    const e = new NetlinkError("RTM_NEWLINK", 34, "Attribute failed policy validation", "add x");
    assert.equal(
      e.message,
      "add x: RTM_NEWLINK: Numerical result out of range (ERANGE): " +
        "Attribute failed policy validation",
    );
    assert.equal(e.extAck, "Attribute failed policy validation");
  });
  await t.step("every named errno has a text", () => {
    for (const n of [1, 2, 3, 4, 5, 6, 7, 9, 11, 12, 13, 14, 16, 17, 18, 19, 20, 21, 22, 23]) {
      const e = new NetlinkError("op", n);
      assert.doesNotMatch(e.message, /^op: E[A-Z0-9]+ \(/, `${n} has a text`);
    }
    for (
      const n of [24, 25, 28, 34, 38, 61, 71, 75, 90, 93, 95, 97, 98, 99, 100, 101, 105, 110, 113]
    ) {
      const e = new NetlinkError("op", n);
      assert.doesNotMatch(e.message, /^op: E[A-Z0-9]+ \(/, `${n} has a text`);
    }
  });
  await t.step("unknown errno", () => {
    assert.equal(new NetlinkError("op", 999).message, "op: E999 (E999)");
  });
});

Deno.test("LinkNotFoundError is an ENODEV NetlinkError naming the link", () => {
  const byName = new LinkNotFoundError("eth9");
  assert.ok(byName instanceof NetlinkError);
  assert.equal(byName.name, "LinkNotFoundError");
  assert.equal(byName.code, "ENODEV");
  assert.equal(byName.errno, 19);
  assert.equal(byName.op, "RTM_GETLINK");
  assert.equal(byName.link, "eth9");
  assert.equal(byName.message, 'Link "eth9" not found: RTM_GETLINK: No such device (ENODEV)');
  const byIndex = new LinkNotFoundError(42, "RTM_DELLINK");
  assert.equal(byIndex.op, "RTM_DELLINK");
  assert.match(byIndex.message, /^Link #42 not found/);
});

Deno.test("DumpInterruptedError and NetnsNotFoundError are NetlinkErrors", () => {
  const d = new DumpInterruptedError("RTM_GETLINK");
  assert.ok(d instanceof NetlinkError);
  assert.equal(d.code, "EINTR");
  assert.equal(d.op, "RTM_GETLINK");
  assert.match(d.extAck ?? "", /retries/);
  const n = new NetnsNotFoundError("/run/netns/nope");
  assert.ok(n instanceof NetlinkError);
  assert.equal(n.code, "ENOENT");
  assert.equal(n.path, "/run/netns/nope");
  assert.match(n.message, /^Network namespace "\/run\/netns\/nope" not found/);
});

Deno.test("isErrno() matches NetlinkErrors by code only", () => {
  assert.ok(isErrno(new NetlinkError("op", 17), "EEXIST"));
  assert.ok(isErrno(new LinkNotFoundError("x"), "EEXIST", "ENODEV"));
  assert.ok(!isErrno(new NetlinkError("op", 17), "ENODEV"));
  assert.ok(!isErrno(new Error("EEXIST"), "EEXIST"));
  assert.ok(!isErrno(undefined, "EEXIST"));
});

Deno.test("NetlinkError names its subject after the operation", () => {
  const e = new NetlinkError("RTM_NEWLINK", 17, "x", { subject: "eth9" });
  assert.equal(e.subject, "eth9");
  assert.equal(e.op, "RTM_NEWLINK");
  assert.equal(e.message, "RTM_NEWLINK eth9: File exists (EEXIST): x");
  const c = new NetlinkError("open", 2, undefined, { context: "Cannot open", subject: "/x" });
  assert.equal(c.message, "Cannot open: open /x: No such file or directory (ENOENT)");
  assert.equal(new NetlinkError("op", 17, undefined, "ctx").subject, undefined);
});

Deno.test("naming() adds a subject to plain NetlinkErrors only", () => {
  const plain = new NetlinkError("RTM_NEWADDR", 17);
  const named = naming(plain, "10.0.0.2/24 dev eth0");
  assert.ok(named instanceof NetlinkError);
  assert.equal(named.message, "RTM_NEWADDR 10.0.0.2/24 dev eth0: File exists (EEXIST)");
  assert.equal(named.cause, undefined, "nothing for a CNI error's details to repeat");
  assert.equal(named.op, "RTM_NEWADDR");
  assert.equal(named.errno, 17);
  assert.equal(naming(named, "other"), named, "a subject is kept");
  const notFound = new LinkNotFoundError("eth9");
  assert.equal(naming(notFound, "eth9"), notFound, "subclasses pass through");
  const other = new TypeError("x");
  assert.equal(naming(other, "eth9"), other);
});

Deno.test("linkText() writes names plainly, indexes as #n, odd names quoted", () => {
  assert.equal(linkText("eth0"), "eth0");
  assert.equal(linkText("veth.100@x"), "veth.100@x");
  assert.equal(linkText(7), "#7");
  assert.equal(linkText("a b\n"), '"a b\\n"');
  assert.equal(linkText("a".repeat(16)), `"${"a".repeat(16)}"`);
});
