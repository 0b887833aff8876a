// Reads ListEnvironmentOutputs with the AWS SDK for JavaScript v3 and prints the outputs as one
// JSON object (key → value). Usage: node environment_outputs.mjs ENVIRONMENT, with
// GITSYNC_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and GITSYNC_JS_MODULES
// set (as for scenario.mjs).
import { createRequire } from "node:module";

const require = createRequire(process.env.GITSYNC_JS_MODULES + "/");
const pr = require("@aws-sdk/client-proton");

const [environmentName] = process.argv.slice(2);
const proton = new pr.ProtonClient({
  endpoint: process.env.GITSYNC_ENDPOINT,
  region: process.env.AWS_REGION,
  credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY },
  maxAttempts: 1,
});
const out = await proton.send(new pr.ListEnvironmentOutputsCommand({ environmentName }));
console.log(JSON.stringify(Object.fromEntries(out.outputs.map((o) => [o.key, o.valueString]))));
