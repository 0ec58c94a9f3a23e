/**
 * HPACK's Huffman code (RFC 7541 appendix B): decoding of string literals, and
 * encoding for tests and for anyone who wants the shorter form.
 *
 * The code is canonical (codes of one length are consecutive, in symbol order),
 * so it is rebuilt here from the 257 code lengths alone; the test checks the
 * result against the RFC's examples and the Kraft equality.
 *
 * @example
 * ```ts
 * import { huffmanDecode, huffmanEncode } from "./huffman.ts";
 *
 * const bytes = huffmanEncode(new TextEncoder().encode("www.example.com"));
 * new TextDecoder().decode(huffmanDecode(bytes)); // "www.example.com"
 * ```
 *
 * @module
 */
import { CompressionError } from "./errors.ts";

// Code length of symbols 0..256 (256 = EOS), each as String.fromCharCode(48 + bits).
const LENGTHS =
  "=GLLLLLLLHNLLNLLLLLLLLNLLLLLLLLL6::<=68;::8;8666555666666678?6<:=677777777777777777777" +
  "77878=C=>6?56565666577666567655677777?;>=LDFDDFFFGFGGGGGHGHHFGHGGGGEFGFGGHFEDFFGGEGFFH" +
  "EFGGEEFEGFGGDFFFGFFGJJDCFGFIJJJKKJHICEJKKJKHEEJJLKKKDHDEFEEGFFIIHHJGJKJJKKKKKLKKKKKJN";

const EOS = 256;

/** Code length of each symbol. */
export const HUFFMAN_BITS: readonly number[] = Array.from(LENGTHS, (c) => c.charCodeAt(0) - 48);

/** Code of each symbol, right-aligned in `HUFFMAN_BITS[symbol]` bits. */
export const HUFFMAN_CODES: readonly number[] = canonicalCodes(HUFFMAN_BITS);

function canonicalCodes(bits: readonly number[]): number[] {
  const order = bits.map((_, symbol) => symbol).sort((a, b) => bits[a] - bits[b] || a - b);
  const codes = new Array<number>(bits.length);
  let code = 0;
  for (let i = 0; i < order.length; i++) {
    if (i > 0) code = (code + 1) * 2 ** (bits[order[i]] - bits[order[i - 1]]);
    codes[order[i]] = code;
  }
  return codes;
}

// Decoding walks a binary tree stored flat: node n's children at TREE[2n], TREE[2n+1];
// a value >= 0x10000 is a leaf holding symbol (value - 0x10000), 0 is no child.
const LEAF = 0x10000;
const TREE = buildTree();

function buildTree(): Int32Array {
  const tree = new Int32Array(2 * 2 * 257);
  let nodes = 1;
  for (let symbol = 0; symbol <= EOS; symbol++) {
    const bits = HUFFMAN_BITS[symbol];
    const code = HUFFMAN_CODES[symbol];
    let node = 0;
    for (let i = bits - 1; i >= 0; i--) {
      const slot = 2 * node + (Math.floor(code / 2 ** i) & 1);
      if (i === 0) tree[slot] = LEAF + symbol;
      else node = tree[slot] || (tree[slot] = nodes++);
    }
  }
  return tree;
}

/**
 * Decodes a Huffman-coded string literal.
 *
 * @throws {CompressionError} on EOS inside the string, padding longer than 7 bits, or
 * padding that is not the EOS prefix (all ones).
 */
export function huffmanDecode(input: Uint8Array): Uint8Array {
  // Every symbol takes at least 5 bits.
  const out = new Uint8Array(Math.ceil(input.length * 8 / 5));
  let length = 0;
  let node = 0;
  // Bits read since the last symbol, and whether they were all ones (padding).
  let pending = 0;
  let allOnes = true;
  for (let i = 0; i < input.length; i++) {
    const byte = input[i];
    for (let bit = 7; bit >= 0; bit--) {
      const one = (byte >> bit) & 1;
      const next = TREE[2 * node + one];
      pending++;
      allOnes &&= one === 1;
      if (next >= LEAF) {
        if (next - LEAF === EOS) throw new CompressionError("Huffman string contains EOS");
        out[length++] = next - LEAF;
        node = 0;
        pending = 0;
        allOnes = true;
      } else {
        node = next;
      }
    }
  }
  if (pending > 7 || !allOnes) throw new CompressionError("invalid Huffman padding");
  return out.subarray(0, length);
}

/** Length in bytes of `input` Huffman-coded. */
export function huffmanLength(input: Uint8Array): number {
  let bits = 0;
  for (let i = 0; i < input.length; i++) bits += HUFFMAN_BITS[input[i]];
  return Math.ceil(bits / 8);
}

/** Huffman-codes `input`, padded with ones. */
export function huffmanEncode(input: Uint8Array): Uint8Array {
  const out = new Uint8Array(huffmanLength(input));
  let length = 0;
  // At most 7 bits wait in `acc`, plus one code of up to 30 bits: below 2^53.
  let acc = 0;
  let accBits = 0;
  for (let i = 0; i < input.length; i++) {
    const bits = HUFFMAN_BITS[input[i]];
    acc = acc * 2 ** bits + HUFFMAN_CODES[input[i]];
    accBits += bits;
    while (accBits >= 8) {
      accBits -= 8;
      const byte = Math.floor(acc / 2 ** accBits);
      out[length++] = byte;
      acc -= byte * 2 ** accBits;
    }
  }
  if (accBits > 0) out[length++] = acc * 2 ** (8 - accBits) + (2 ** (8 - accBits) - 1);
  return out;
}
