// The base of highwire's errors: a `code` that callers tell apart (stable: reject events, logs, the
// audit log and API statuses carry it) and, as `name`, the class that threw it.
export class CodedError<Code extends string> extends Error {
  readonly code: Code

  constructor(code: Code, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}
