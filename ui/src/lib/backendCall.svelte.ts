// The part every dialog's backend call shares: the busy state while it runs,
// the failure kept for `ErrorMessage`, and the failure passed on to the app,
// which raises the keyring banner when the keyring is the cause.
import { toBackendError, type BackendError } from "./backend";

export class BackendCall {
  running = $state(false);
  error: BackendError | null = $state(null);
  readonly #report: (error: BackendError) => void;

  constructor(report: (error: BackendError) => void) {
    this.#report = report;
  }

  /**
   * Runs `call` and hands its result to `done`. A failure of either lands in
   * `error`, then `failed` runs and the app is told. There is no guard
   * against a second run: the dialogs disable what starts one.
   */
  async run<T>(
    call: () => Promise<T>,
    done: (value: T) => void,
    failed?: () => void,
  ): Promise<void> {
    this.running = true;
    this.error = null;
    try {
      done(await call());
    } catch (reason) {
      this.error = toBackendError(reason);
      failed?.();
      this.#report(this.error);
    } finally {
      this.running = false;
    }
  }
}
