/**
 * The header relay's parts without sockets: Huffman and HPACK against RFC 7541
 * appendix C, encode → decode on random header lists, and the request rewriter
 * on client byte streams cut at every possible place.
 */
import { assert, assertEquals, assertThrows } from "./assert.ts";
import { HUFFMAN_BITS, huffmanDecode, huffmanEncode } from "../lib/http2/huffman.ts";
import { encodeHeaderBlock, type HeaderField, HpackDecoder } from "../lib/http2/hpack.ts";
import { CompressionError, Http2Error } from "../lib/http2/errors.ts";
import { RequestRewriter } from "../lib/http2/request_rewriter.ts";
import { CLIENT_PREFACE, Flag, FrameType, writeFrameHeader } from "../lib/http2/frames.ts";
import { random } from "./fixtures/prng.ts";

const hex = (text: string) =>
  Uint8Array.from(text.replace(/\s+/g, "").match(/../g)!, (byte) => parseInt(byte, 16));
const latin1 = (bytes: Uint8Array) => String.fromCharCode(...bytes);
const ascii = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));
const pairs = (fields: HeaderField[]) => fields.map(({ name, value }) => [name, value]);

Deno.test("the Huffman code is complete (Kraft equality) and matches RFC 7541 C.4.1", () => {
  assertEquals(HUFFMAN_BITS.length, 257);
  assertEquals(HUFFMAN_BITS.reduce((sum, bits) => sum + 2 ** -bits, 0), 1);
  assertEquals(huffmanEncode(ascii("www.example.com")), hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff"));
  assertEquals(latin1(huffmanDecode(hex("a8eb 1064 9cbf"))), "no-cache");
});

Deno.test("Huffman refuses EOS and bad padding", () => {
  assertThrows(() => huffmanDecode(hex("ffffffff")), CompressionError); // EOS (30 ones)
  assertThrows(() => huffmanDecode(hex("00")), CompressionError); // padding of zeros
  assertThrows(() => huffmanDecode(hex("f1e3c2e5f23a6ba0ab90f4ffff")), CompressionError); // > 7 bits
});

Deno.test("Huffman: encode → decode is the identity on random bytes", () => {
  const rand = random(7);
  for (let i = 0; i < 500; i++) {
    const bytes = Uint8Array.from({ length: Math.floor(rand() * 64) }, () => rand() * 256);
    assertEquals(huffmanDecode(huffmanEncode(bytes)), bytes);
  }
});

// RFC 7541 C.2: single representations.
Deno.test("HPACK C.2: literal with, without and never indexed, and indexed", () => {
  const decoder = new HpackDecoder();
  assertEquals(
    pairs(decoder.decode(hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"))),
    [["custom-key", "custom-header"]],
  );
  assertEquals(decoder.dynamicTableSize, 55);
  assertEquals(pairs(new HpackDecoder().decode(hex("040c 2f73 616d 706c 652f 7061 7468"))), [[
    ":path",
    "/sample/path",
  ]]);
  const never = new HpackDecoder().decode(hex("1008 7061 7373 776f 7264 0673 6563 7265 74"));
  assertEquals(never, [{ name: "password", value: "secret", neverIndexed: true }]);
  assertEquals(pairs(new HpackDecoder().decode(hex("82"))), [[":method", "GET"]]);
});

const requests = [
  [[":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "www.example.com"]],
  [[":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "www.example.com"], [
    "cache-control",
    "no-cache",
  ]],
  [[":method", "GET"], [":scheme", "https"], [":path", "/index.html"], [
    ":authority",
    "www.example.com",
  ], ["custom-key", "custom-value"]],
];

for (
  const [title, blocks, sizes] of [
    ["C.3 (no Huffman)", [
      "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
      "8286 84be 5808 6e6f 2d63 6163 6865",
      "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ], [57, 110, 164]],
    ["C.4 (Huffman)", [
      "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
      "8286 84be 5886 a8eb 1064 9cbf",
      "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ], [57, 110, 164]],
  ] as const
) {
  Deno.test(`HPACK ${title}: three requests on one connection`, () => {
    const decoder = new HpackDecoder();
    blocks.forEach((block, i) => {
      assertEquals(pairs(decoder.decode(hex(block))), requests[i]);
      assertEquals(decoder.dynamicTableSize, sizes[i]);
    });
  });
}

const date1 = "Mon, 21 Oct 2013 20:13:21 GMT";
const date2 = "Mon, 21 Oct 2013 20:13:22 GMT";
const site = "https://www.example.com";
const responses = [
  [[":status", "302"], ["cache-control", "private"], ["date", date1], ["location", site]],
  [[":status", "307"], ["cache-control", "private"], ["date", date1], ["location", site]],
  [[":status", "200"], ["cache-control", "private"], ["date", date2], ["location", site], [
    "content-encoding",
    "gzip",
  ], ["set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"]],
];
// The appendix's encoder has a 256-byte table: a size update says so first.
const TABLE_256 = "3fe101";

for (
  const [title, blocks] of [
    ["C.5 (no Huffman)", [
      "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a" +
      "3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
      "4803 3330 37c1 c0bf",
      "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04" +
      "677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49" +
      "553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
    ]],
    ["C.6 (Huffman)", [
      "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e" +
      "919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
      "4883 640e ffc1 c0bf",
      "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7" +
      "821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed" +
      "4ee5 b106 3d50 07",
    ]],
  ] as const
) {
  Deno.test(`HPACK ${title}: three responses, evicting from a 256-byte table`, () => {
    const decoder = new HpackDecoder();
    blocks.forEach((block, i) => {
      assertEquals(pairs(decoder.decode(hex((i === 0 ? TABLE_256 : "") + block))), responses[i]);
      assertEquals(decoder.dynamicTableSize, [222, 222, 215][i]);
    });
  });
}

Deno.test("HPACK refuses what is malformed", () => {
  for (
    const bad of [
      "80", // index 0
      "be", // dynamic index 62 on an empty table
      "400a 6375", // truncated string
      "ff", // truncated integer
      "ff ffffffffff7f", // integer too large
      "82 20", // size update after a field
      "3fe1ff07", // size update beyond the limit
    ]
  ) {
    assertThrows(() => new HpackDecoder().decode(hex(bad)), CompressionError);
  }
});

function randomFields(rand: () => number): HeaderField[] {
  const int = (n: number) => Math.floor(rand() * n);
  const text = (n: number) => String.fromCharCode(...Array.from({ length: n }, () => int(256)));
  return Array.from({ length: int(12) }, () => {
    switch (int(4)) {
      case 0:
        return { name: ":method", value: ["GET", "POST", "PUT"][int(3)], neverIndexed: false };
      case 1:
        return { name: "authorization", value: text(int(3000)), neverIndexed: rand() < 0.5 };
      case 2:
        return { name: "content-type", value: "application/grpc", neverIndexed: false };
      default:
        return { name: text(1 + int(40)), value: text(int(300)), neverIndexed: rand() < 0.2 };
    }
  });
}

Deno.test("HPACK: encode → decode gives the same list, and leaves the table empty", () => {
  const rand = random(42);
  const decoder = new HpackDecoder();
  for (let i = 0; i < 300; i++) {
    const fields = randomFields(rand);
    assertEquals(decoder.decode(encodeHeaderBlock(fields)), fields);
    assertEquals(decoder.dynamicTableSize, 0);
  }
});

// --- The request rewriter ---------------------------------------------------

function frame(type: number, flags: number, stream: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(9 + payload.length);
  writeFrameHeader(out, 0, payload.length, type, flags, stream);
  out.set(payload, 9);
  return out;
}
const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) out.set(part, (at += part.length) - part.length);
  return out;
};
const SETTINGS = frame(0x4, 0, 0, new Uint8Array(6));
const WINDOW = frame(0x8, 0, 0, hex("00010000"));
const data = (stream: number, size: number, end = false) =>
  frame(FrameType.DATA, end ? Flag.END_STREAM : 0, stream, new Uint8Array(size).fill(stream));

/** Splits a server-side view of the rewritten bytes into frames (type, flags, stream, payload). */
function frames(bytes: Uint8Array) {
  const out: { type: number; flags: number; stream: number; payload: Uint8Array }[] = [];
  assertEquals(bytes.subarray(0, 24), CLIENT_PREFACE);
  for (let at = 24; at < bytes.length;) {
    const length = bytes[at] << 16 | bytes[at + 1] << 8 | bytes[at + 2];
    const stream = new DataView(bytes.buffer, bytes.byteOffset + at + 5, 4).getUint32(0);
    out.push({
      type: bytes[at + 3],
      flags: bytes[at + 4],
      stream,
      payload: bytes.subarray(at + 9, at + 9 + length),
    });
    at += 9 + length;
  }
  return out;
}

/** Header lists as the server decodes them, by stream, plus the other frames' bytes. */
function serverView(bytes: Uint8Array) {
  const decoder = new HpackDecoder();
  const blocks: [number, [string, string][]][] = [];
  const others: Uint8Array[] = [];
  let pending: Uint8Array[] = [];
  for (const { type, flags, stream, payload } of frames(bytes)) {
    if (type === FrameType.HEADERS || type === FrameType.CONTINUATION) {
      const start = type === FrameType.HEADERS && (flags & Flag.PRIORITY) ? 5 : 0;
      pending.push(payload.subarray(start));
      if (flags & Flag.END_HEADERS) {
        blocks.push([stream, pairs(decoder.decode(concat(pending))) as [string, string][]]);
        pending = [];
      }
    } else {
      others.push(frame(type, flags, stream, payload));
    }
  }
  return { blocks, others };
}

/** Runs `input` through a rewriter in pieces of `size` bytes; answers what it sent upstream. */
function rewrite(
  input: Uint8Array,
  size: number,
  authorization = () => "Bearer tok" as string | undefined,
) {
  const rewriter = new RequestRewriter({ authorization });
  const out: Uint8Array[] = [];
  for (let at = 0; at < input.length; at += size) {
    // Copies: pieces may be views of a buffer that the next read reuses.
    for (const piece of rewriter.push(input.slice(at, at + size))) out.push(piece.slice());
  }
  return { bytes: concat(out), rewriter };
}

// Three requests from an encoder that uses its dynamic table (RFC C.4), each with a body.
const clientStream = concat([
  CLIENT_PREFACE,
  SETTINGS,
  WINDOW,
  frame(FrameType.HEADERS, Flag.END_HEADERS, 1, hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff")),
  data(1, 3000, true),
  // Stream 3's block in two frames, with padding and priority.
  frame(FrameType.HEADERS, Flag.PADDED | Flag.PRIORITY, 3, hex("03 80000001 0f 8286 84 000000")),
  frame(FrameType.CONTINUATION, Flag.END_HEADERS, 3, hex("be 5886 a8eb 1064 9cbf")),
  data(3, 20000),
  // Stream 5 carries its own authorization.
  frame(
    FrameType.HEADERS,
    Flag.END_HEADERS,
    5,
    concat([hex("8287 85bf"), encodeHeaderBlock([{ name: "authorization", value: "Bearer own" }])]),
  ),
  data(3, 10, true),
  // Trailers on stream 5: no authorization added.
  frame(
    FrameType.HEADERS,
    Flag.END_HEADERS | Flag.END_STREAM,
    5,
    encodeHeaderBlock([{ name: "grpc-status", value: "0" }]),
  ),
]);

Deno.test("the rewriter adds authorization to requests only, and copies every other frame", () => {
  const expected = rewrite(clientStream, clientStream.length).bytes;
  const { blocks, others } = serverView(expected);
  const auth = ["authorization", "Bearer tok"];
  assertEquals(blocks, [
    [1, [...requests[0], auth]],
    [3, [...requests[1], auth]],
    [5, [[":method", "GET"], [":scheme", "https"], [":path", "/index.html"], [
      ":authority",
      "www.example.com",
    ], ["authorization", "Bearer own"]]],
    [5, [["grpc-status", "0"]]],
  ]);
  assertEquals(others, [SETTINGS, WINDOW, data(1, 3000, true), data(3, 20000), data(3, 10, true)]);
  // Stream 3 kept its priority (exclusive, on stream 1, weight 15) and lost its padding.
  const three = frames(expected).find((f) => f.stream === 3 && f.type === FrameType.HEADERS)!;
  assertEquals(three.flags & (Flag.PRIORITY | Flag.PADDED), Flag.PRIORITY);
  assertEquals(three.payload.subarray(0, 5), hex("80000001 0f"));
});

Deno.test("the rewriter gives the same bytes however the stream is cut", () => {
  const whole = rewrite(clientStream, clientStream.length).bytes;
  for (const size of [1, 2, 5, 8, 9, 10, 17, 100, 4096]) {
    assertEquals(rewrite(clientStream, size).bytes, whole, `pieces of ${size}`);
  }
});

Deno.test("the rewriter passes large frames as views, without copies", () => {
  const rewriter = new RequestRewriter({ authorization: () => undefined });
  const chunk = concat([CLIENT_PREFACE, SETTINGS, data(1, 100000), data(1, 5)]);
  const pieces = rewriter.push(chunk);
  assertEquals(pieces.length, 1);
  assert(pieces[0].buffer === chunk.buffer);
});

Deno.test("without a token, requests pass with their fields unchanged", () => {
  const { blocks } = serverView(rewrite(clientStream, 7, () => undefined).bytes);
  assertEquals(blocks[0], [1, requests[0]]);
});

Deno.test("without an authorization option, header blocks pass byte for byte", () => {
  const goaway = frame(FrameType.GOAWAY, 0, 0, hex("0000000100000000"));
  const stream = concat([clientStream, goaway]);
  // With the option (even one adding nothing) the blocks are re-encoded: other bytes.
  const reencoded = rewrite(clientStream, clientStream.length, () => undefined).bytes;
  assert(
    reencoded.length !== clientStream.length || reencoded.some((b, i) => b !== clientStream[i]),
  );
  for (const size of [1, 7, 9, 17, stream.length]) {
    const rewriter = new RequestRewriter({ dropGoaway: true });
    const out: Uint8Array[] = [];
    for (let at = 0; at < stream.length; at += size) {
      for (const piece of rewriter.push(stream.subarray(at, at + size))) out.push(piece.slice());
    }
    assertEquals(concat(out), clientStream, `pieces of ${size}`);
  }
});

Deno.test("a token too large for one frame goes in CONTINUATION frames", () => {
  const token = `Bearer ${"x".repeat(40000)}`;
  const input = concat([
    CLIENT_PREFACE,
    frame(FrameType.HEADERS, Flag.END_HEADERS, 1, hex("8286 84")),
  ]);
  const bytes = rewrite(input, input.length, () => token).bytes;
  const split = frames(bytes);
  assertEquals(split.map((f) => f.type), [1, 9, 9]);
  assert(split.every((f) => f.payload.length <= 16384));
  assertEquals(serverView(bytes).blocks[0][1].at(-1), ["authorization", token]);
});

Deno.test("a bad stream ends in a GOAWAY, after the whole frames before it", () => {
  const cases: [string, Uint8Array, string][] = [
    ["preface", ascii("GET / HTTP/1.1\r\n\r\n"), "preface"],
    [
      "hpack",
      concat([CLIENT_PREFACE, frame(FrameType.HEADERS, Flag.END_HEADERS, 1, hex("80"))]),
      "HPACK",
    ],
    [
      "interleaved",
      concat([CLIENT_PREFACE, frame(FrameType.HEADERS, 0, 1, hex("82")), SETTINGS]),
      "interrupted",
    ],
    [
      "stray continuation",
      concat([CLIENT_PREFACE, frame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, hex("82"))]),
      "CONTINUATION",
    ],
    [
      "padding",
      concat([
        CLIENT_PREFACE,
        frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.PADDED, 1, hex("0582")),
      ]),
      "padding",
    ],
    [
      "stream 0",
      concat([CLIENT_PREFACE, frame(FrameType.HEADERS, Flag.END_HEADERS, 0, hex("82"))]),
      "stream 0",
    ],
    [
      "huge",
      concat([CLIENT_PREFACE, frame(FrameType.HEADERS, 0, 1, new Uint8Array(300000))]),
      "larger",
    ],
  ];
  for (const [name, input, message] of cases) {
    for (const size of [input.length, 3]) {
      const { bytes, rewriter } = rewrite(concat([input, data(1, 10)]), size);
      assert(rewriter.error instanceof Http2Error, name);
      assert(rewriter.error.message.includes(message), `${name}: ${rewriter.error.message}`);
      // What went out is whole frames, then the GOAWAY.
      if (name !== "preface") {
        const sent = frames(bytes);
        assertEquals(sent.at(-1)!.type, FrameType.GOAWAY, name);
      }
    }
  }
});

Deno.test("with dropGoaway the client's GOAWAY is left out, however the stream is cut", () => {
  const goaway = frame(FrameType.GOAWAY, 0, 0, hex("0000000100000000"));
  const stream = concat([CLIENT_PREFACE, SETTINGS, data(1, 300), goaway, WINDOW, data(3, 40)]);
  const without = concat([CLIENT_PREFACE, SETTINGS, data(1, 300), WINDOW, data(3, 40)]);
  for (const size of [1, 7, 9, 17, stream.length]) {
    for (const dropGoaway of [true, false]) {
      const rewriter = new RequestRewriter({ authorization: () => undefined, dropGoaway });
      const out: Uint8Array[] = [];
      for (let at = 0; at < stream.length; at += size) {
        for (const piece of rewriter.push(stream.subarray(at, at + size))) out.push(piece.slice());
      }
      assertEquals(concat(out), dropGoaway ? without : stream, `pieces of ${size}`);
    }
  }
});
