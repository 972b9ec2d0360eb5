// Output files written while the caller goes on: a run's next step (decoding and segmenting the
// next photo) overlaps the encoding and writing of the last photo's files, whose work runs on
// libuv's threads. Bounded, so that at most a few photos' files are held in memory; the first
// failure is not lost but thrown where the caller next adds a write or waits for them all.

/** Jobs that write files, run in the background at most `limit` at a time. */
export class BackgroundWrites {
  private readonly running = new Set<Promise<void>>();
  private failure: { readonly error: unknown } | undefined;

  constructor(private readonly limit = 1) {}

  /**
   * Start `job` once fewer than `limit` jobs run, without waiting for it to end.
   * @throws the error of a job that failed before this call
   */
  async add(job: () => Promise<void>): Promise<void> {
    this.throwIfFailed();
    while (this.running.size >= this.limit) await Promise.race(this.running);
    this.throwIfFailed();
    const done: Promise<void> = job()
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .then(() => {
        this.running.delete(done);
      });
    this.running.add(done);
  }

  /**
   * Wait until every job has ended.
   * @throws the first error a job threw
   */
  async flush(): Promise<void> {
    await this.settle();
    this.throwIfFailed();
  }

  /** Wait until every job has ended, whatever their outcome (for a run that is failing anyway). */
  async settle(): Promise<void> {
    while (this.running.size > 0) await Promise.all(this.running);
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure.error;
  }
}
