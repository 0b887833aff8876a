// Reads GetServiceInstanceSyncStatus with the AWS SDK for JavaScript v3 and prints it as JSON.
// Usage: node instance_status.mjs SERVICE INSTANCE, with GITSYNC_ENDPOINT, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_REGION and GITSYNC_JS_MODULES set (as for scenario.mjs).
import { createRequire } from "node:module";

const require = createRequire(process.env.GITSYNC_JS_MODULES + "/");
const pr = require("@aws-sdk/client-proton");

const [serviceName, serviceInstanceName] = process.argv.slice(2);
const proton = new pr.ProtonClient({
  endpoint: process.env.GITSYNC_ENDPOINT,
  region: process.env.AWS_REGION,
  credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY },
  maxAttempts: 1,
});
const s = await proton.send(new pr.GetServiceInstanceSyncStatusCommand({ serviceName, serviceInstanceName }));
const attempt = (a) => a && {
  status: a.status,
  target: a.target,
  sha: a.targetRevision?.sha,
  startedAtIsDate: a.startedAt instanceof Date,
  events: a.events.map((e) => [e.type, e.event]),
};
console.log(JSON.stringify({
  desiredSha: s.desiredState?.sha,
  latestSync: attempt(s.latestSync),
  latestSuccessfulSync: attempt(s.latestSuccessfulSync),
}));
