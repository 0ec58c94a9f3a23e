/**
 * Errors a user can meet: each carries one line that says what went wrong and,
 * where there is one, what to do. `main.ts` prints the message alone and exits
 * with `exitCode`; anything else is a bug and keeps its stack.
 *
 * @module
 */

/** A failure the user can act on; printed as one line, never with a stack. */
export class UserError extends Error {
  /** Process exit status: 2 for bad usage, 1 for runtime failures. */
  readonly exitCode: number;

  /** A one-line `message`; `exitCode` defaults to 1. */
  constructor(message: string, options?: { exitCode?: number; cause?: unknown }) {
    super(message, { cause: options?.cause });
    this.name = "UserError";
    this.exitCode = options?.exitCode ?? 1;
  }
}

/** Bad command-line usage (exit status 2). */
export class UsageError extends UserError {
  /** A one-line `message`; the exit code is 2. */
  constructor(message: string) {
    super(message, { exitCode: 2 });
    this.name = "UsageError";
  }
}
