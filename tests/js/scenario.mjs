// Drives gitsync with the AWS SDK for JavaScript v3 and prints what it saw as JSON.
// Environment: GITSYNC_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
// GITSYNC_JS_MODULES (the node_modules folder holding the SDK packages).
import { createRequire } from "node:module";

const require = createRequire(process.env.GITSYNC_JS_MODULES + "/");
const cs = require("@aws-sdk/client-codestar-connections");
const pr = require("@aws-sdk/client-proton");

const config = {
  endpoint: process.env.GITSYNC_ENDPOINT,
  region: process.env.AWS_REGION,
  credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY },
  maxAttempts: 1,
};
const connections = new cs.CodeStarConnectionsClient(config);
const proton = new pr.ProtonClient(config);
const out = {};

async function error(promise) {
  try {
    await promise;
    return null;
  } catch (e) {
    return { name: e.name, status: e.$metadata?.httpStatusCode, fault: e.$fault, message: e.message };
  }
}

const { ConnectionArn } = await connections.send(new cs.CreateConnectionCommand({ ConnectionName: "js", ProviderType: "GitHub" }));
out.connectionArn = ConnectionArn;
out.connection = (await connections.send(new cs.GetConnectionCommand({ ConnectionArn }))).Connection;
out.listed = (await connections.send(new cs.ListConnectionsCommand({}))).Connections.map((c) => c.ConnectionArn);
const link = (await connections.send(new cs.CreateRepositoryLinkCommand({ ConnectionArn, OwnerId: "octo", RepositoryName: "js-infra" }))).RepositoryLinkInfo;
out.link = link;
const status = await connections.send(new cs.GetResourceSyncStatusCommand({ ResourceName: "seeded-stack", SyncType: "CFN_STACK_SYNC" }));
out.stackStartedAt = status.LatestSuccessfulSync.StartedAt.toISOString();
out.stackStartedAtIsDate = status.LatestSuccessfulSync.StartedAt instanceof Date;
out.stackLatestStatus = status.LatestSync.Status;
out.stackEvents = status.LatestSync.Events.map((e) => [e.Type, e.Time instanceof Date]);
out.missingConnection = await error(connections.send(new cs.GetConnectionCommand({ ConnectionArn: ConnectionArn.replace(/.{4}$/, "ffff") })));
out.invalidInput = await error(connections.send(new cs.CreateConnectionCommand({ ConnectionName: "x".repeat(40), ProviderType: "GitHub" })));
await connections.send(new cs.DeleteConnectionCommand({ ConnectionArn }));
out.afterDelete = (await connections.send(new cs.ListConnectionsCommand({}))).Connections.map((c) => c.ConnectionArn);

const repo = (await proton.send(new pr.CreateRepositoryCommand({ connectionArn: out.listed.find((a) => a !== ConnectionArn), name: "octo/js", provider: "GITHUB" }))).repository;
out.repository = repo;
out.repositories = (await proton.send(new pr.ListRepositoriesCommand({}))).repositories.map((r) => r.name);
const template = await proton.send(new pr.GetTemplateSyncStatusCommand({ templateName: "seeded-template", templateType: "ENVIRONMENT", templateVersion: "1" }));
out.templateStartedAt = template.latestSuccessfulSync.startedAt.toISOString();
out.templateDesiredSha = template.desiredState.sha;
out.missingRepository = await error(proton.send(new pr.GetRepositoryCommand({ name: "octo/none", provider: "GITHUB" })));
out.unsupported = await error(proton.send(new pr.ListComponentsCommand({})));
await proton.send(new pr.DeleteRepositoryCommand({ name: "octo/js", provider: "GITHUB" }));

console.log(JSON.stringify(out));
