// depthlite web UI: read a NumPy .npy file (format 1.0-3.0), the server's float32 depth map.

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"

// The dtypes the depth endpoints send (float32), plus what a hand-made file may carry.
const DTYPES = {
  "<f4": [Float32Array, 4],
  "<f8": [Float64Array, 8],
  "|u1": [Uint8Array, 1],
  "<u2": [Uint16Array, 2],
};

export class NpyError extends Error {}

function headerText(bytes, view) {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new NpyError("not a .npy file (no \\x93NUMPY magic)");
  }
  const major = bytes[6];
  // Version 1 has a 2-byte header length, versions 2 and 3 a 4-byte one.
  const wide = major >= 2;
  const length = wide ? view.getUint32(8, true) : view.getUint16(8, true);
  const start = wide ? 12 : 10;
  if (start + length > bytes.length) throw new NpyError("truncated .npy header");
  return { text: new TextDecoder(major >= 3 ? "utf-8" : "latin1").decode(bytes.subarray(start, start + length)), end: start + length };
}

function field(text, name) {
  // The header is a Python dict literal, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (600, 960), }
  const match = new RegExp(`['"]${name}['"]\\s*:\\s*(\\([^)]*\\)|'[^']*'|"[^"]*"|True|False)`).exec(text);
  if (!match) throw new NpyError(`.npy header has no ${name}`);
  return match[1];
}

/** Parse a .npy buffer: {shape: number[], dtype: string, data: TypedArray} in C order. */
export function parseNpy(buffer) {
  const bytes = new Uint8Array(buffer);
  const view = new DataView(buffer);
  const { text, end } = headerText(bytes, view);
  const dtype = field(text, "descr").slice(1, -1);
  if (field(text, "fortran_order") !== "False") throw new NpyError("Fortran-ordered .npy is not supported");
  const shape = field(text, "shape")
    .slice(1, -1)
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  if (shape.some((n) => !Number.isInteger(n) || n < 0)) throw new NpyError(`bad .npy shape ${shape}`);
  const kind = DTYPES[dtype];
  if (!kind) throw new NpyError(`unsupported .npy dtype ${dtype}`);
  const [Typed, size] = kind;
  const count = shape.reduce((a, b) => a * b, 1);
  if (end + count * size > bytes.length) throw new NpyError("truncated .npy data");
  // The header pads the data to a 64-byte boundary, so a typed view needs no copy.
  const data = end % size === 0 ? new Typed(buffer, end, count) : new Typed(buffer.slice(end, end + count * size));
  return { shape, dtype, data };
}
