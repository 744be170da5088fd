// Compiled (never run) by `tsc -p .`: the declarations give typed paths, bodies, answers
// and errors. tests/clients/typescript/test_typecheck.py runs it; a `@ts-expect-error`
// that stops being an error fails the compile, so the negative cases are checked too.
import {
  type FollowEvent,
  type Job,
  ValidationFailed,
  createGatewayClient,
} from "../src/index.js";

export async function example(): Promise<void> {
  const gw = createGatewayClient({ baseUrl: "http://localhost:8080", apiKey: "tlk_..." });
  const job: Job = await gw.POST("/v1/jobs", {
    body: { kind: "parcel_refresh", items: [{ platform: "alpha", parcel_id: "01-2" }] },
  });
  const state: string = (await gw.GET("/v1/jobs/{job_id}", { params: { path: { job_id: job.id } } })).state;
  for await (const listed of gw.paginate("/v1/jobs", { params: { query: { limit: 50 } } })) {
    const id: string = listed.id;
    void id;
  }
  for await (const event of gw.followJob(job.id)) {
    const e: FollowEvent = event;
    if (e.kind === "event") void e.data.progress.succeeded;
    else void e.job.state;
  }
  try {
    await gw.GET("/v1/me");
  } catch (error) {
    if (error instanceof ValidationFailed) void error.errors[0]?.msg;
  }
  // @ts-expect-error: no such path
  await gw.GET("/v1/nowhere");
  // @ts-expect-error: a job's path parameter is required
  await gw.GET("/v1/jobs/{job_id}");
  // @ts-expect-error: `kind` must be a known job kind
  await gw.POST("/v1/jobs", { body: { kind: "nonsense", items: [] } });
  // @ts-expect-error: /v1/me is not a paginated list
  gw.paginate("/v1/me");
  void state;
}
