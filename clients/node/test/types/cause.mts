// An error's cause, as the README documents it, on a target whose lib has no
// Error.cause (ES2021 and before).
import { CloudCallError } from '@cloudcall/client';

export function why(e: unknown): unknown {
  return e instanceof CloudCallError ? e.cause : undefined;
}
