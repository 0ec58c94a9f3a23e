/** The ssh command lines, checked without running ssh (lib/ssh/args.ts is pure). */
import { forwardSpec, masterArgs, muxArgs, userSshArgs } from "../lib/ssh/args.ts";
import { sessionEnvCommand } from "../lib/ssh/session_env.ts";
import { platformProblem } from "../lib/ssh/command.ts";
import { assert, assertEquals, assertThrows } from "./assert.ts";

Deno.test("the master: our must-hold options first, the user's -F/-o next, overridable defaults last", () => {
  const args = masterArgs({
    host: "login",
    controlPath: "/tmp/d/ctl",
    sshConfig: "cfg",
    sshOptions: ["ServerAliveInterval=9", "User=alice"],
    interactive: false,
  });
  const at = (word: string) => args.indexOf(word);
  assert(at("ControlPersist=30") < at("User=alice"));
  assert(at("ClearAllForwardings=yes") < at("ServerAliveInterval=9"));
  assert(at("ServerAliveInterval=9") < at("ServerAliveInterval=1"), "the user's value wins");
  assertEquals(args.slice(at("-F"), at("-F") + 2), ["-F", "cfg"]);
  assertEquals(args.slice(-5), ["BatchMode=yes", "-f", "-N", "--", "login"]);
});

Deno.test("the user's -F and -o, as the master gets them and doctor shows them", () => {
  assertEquals(userSshArgs({}), []);
  assertEquals(userSshArgs({ sshConfig: "", sshOptions: ["A=b"] }), ["-F", "", "-o", "A=b"]);
});

Deno.test("a mux client can never open a connection of its own", () => {
  const args = muxArgs("/tmp/d/ctl");
  assertEquals(args.slice(0, 4), ["-F", "none", "-S", "/tmp/d/ctl"]);
  assert(args.includes("ProxyCommand=false") && args.includes("BatchMode=yes"));
});

Deno.test("-L specs bind loopback and bracket IPv6 targets", () => {
  assertEquals(forwardSpec("127.0.0.1", 41001, "data-a", 40001), "127.0.0.1:41001:data-a:40001");
  assertEquals(forwardSpec("127.0.0.1", 41001, "::1", 22), "127.0.0.1:41001:[::1]:22");
  assertEquals(forwardSpec("10.0.0.5", 41001, "info", 31206), "10.0.0.5:41001:info:31206");
  assertEquals(forwardSpec("::", 41001, "info", 31206), "[::]:41001:info:31206");
});

Deno.test("the keepalive session's command reports each variable between markers", () => {
  assertEquals(sessionEnvCommand([]), "exec cat");
  const command = sessionEnvCommand(["ARRAKIS_SERVER"]);
  assert(
    command.startsWith("echo arrakis-proxy-value-of-ARRAKIS_SERVER; printenv ARRAKIS_SERVER;"),
  );
  assert(command.endsWith("exec cat"));
  assertThrows(() => sessionEnvCommand(["A B"]), TypeError);
});

Deno.test("Windows is refused with what to do instead; Linux and macOS are not", () => {
  assert(/ControlMaster.*WSL/.test(platformProblem("windows") ?? ""));
  assertEquals([platformProblem("linux"), platformProblem("darwin")], [undefined, undefined]);
});
