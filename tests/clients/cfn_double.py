"""A CloudFormation endpoint double at the HTTP level (the awsQuery protocol: form-encoded requests,
XML answers), for what moto cannot show: an update that fails on a resource and rolls back, and
an update cancelled while it runs (CancelUpdateStack: set `settle_after` high to hold the update).

It holds one existing stack and plays a scripted update: the change set is computed, executed,
the stack reports UPDATE_IN_PROGRESS once and then UPDATE_ROLLBACK_COMPLETE, with the stack events
of a failed resource. Every request's form fields are kept in `requests` for the test to check.
"""
import datetime
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

NS = "http://cloudformation.amazonaws.com/doc/2010-05-15/"


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class RollbackDouble:
    def __init__(self, stack, parameters, failure_reason, status="CREATE_COMPLETE"):
        self.stack = stack
        self.stack_id = f"arn:aws:cloudformation:us-east-1:123456789012:stack/{stack}/double"
        self.parameters = dict(parameters)
        self.failure_reason = failure_reason
        self.status = status
        # The stack's tags; a test sets gitsync's ownership tags (gitsync:account,
        # gitsync:sync-configuration) when the stack should count as one gitsync deployed.
        self.tags = {}
        self.polls_after_execute = 0
        self.executed = False
        # DescribeChangeSet polls that still see the change set being computed (CREATE_IN_PROGRESS).
        self.computing_polls = 0
        # DescribeStacks polls that still see UPDATE_IN_PROGRESS after ExecuteChangeSet.
        self.settle_after = 1
        # The stack was created moments ago (its events are as recent as the update's): an
        # update's attempt must still copy only the events its own change set caused.
        self.events = [
            ("c1", "AWS::CloudFormation::Stack", stack, "CREATE_IN_PROGRESS", "User Initiated"),
            ("c2", "AWS::CloudFormation::Stack", stack, "CREATE_COMPLETE", ""),
        ]
        self.requests = []
        self.change_set_name, self.change_set_created = None, now()
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                form = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
                double.requests.append(form)
                status, xml = double.answer(form)
                data = xml.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()

    def actions(self):
        return [r.get("Action") for r in self.requests]

    def answer(self, form):
        action = form.get("Action")
        if action == "DescribeStacks":
            if self.status == "UPDATE_ROLLBACK_IN_PROGRESS":  # a cancelled update rolls back at once
                self.status = "UPDATE_ROLLBACK_COMPLETE"
            if self.status == "UPDATE_IN_PROGRESS":
                self.polls_after_execute += 1
                if self.polls_after_execute > self.settle_after:
                    self.status = "UPDATE_ROLLBACK_COMPLETE"
            params = "".join(f"<member><ParameterKey>{escape(k)}</ParameterKey><ParameterValue>{escape(v)}</ParameterValue></member>"
                             for k, v in self.parameters.items())
            tags = "".join(f"<member><Key>{escape(k)}</Key><Value>{escape(v)}</Value></member>" for k, v in self.tags.items())
            return 200, self.wrap(action, f"""<Stacks><member><StackName>{self.stack}</StackName><StackId>{self.stack_id}</StackId>
                <StackStatus>{self.status}</StackStatus><CreationTime>2026-01-01T00:00:00Z</CreationTime>
                <Parameters>{params}</Parameters><Tags>{tags}</Tags></member></Stacks>""")
        if action == "GetTemplate":
            return 200, self.wrap(action, "<TemplateBody>Resources: {}</TemplateBody>")
        if action == "CreateChangeSet":
            self.change_set_name, self.change_set_created = form.get("ChangeSetName"), now()
            return 200, self.wrap(action, f"<Id>{self.stack_id.replace(':stack/', ':changeSet/')}</Id><StackId>{self.stack_id}</StackId>")
        if action == "DescribeChangeSet":
            # As AWS reports it: AVAILABLE until executed, then in progress while the stack is,
            # then complete or (rolled back) failed.
            if not self.executed:
                execution = "AVAILABLE"
            elif self.status.endswith("_IN_PROGRESS"):
                execution = "EXECUTE_IN_PROGRESS"
            else:
                execution = "EXECUTE_FAILED" if "ROLLBACK" in self.status else "EXECUTE_COMPLETE"
            name = self.change_set_name or form.get("ChangeSetName", "")
            computed = "CREATE_COMPLETE"
            if self.computing_polls > 0:
                self.computing_polls -= 1
                computed = "CREATE_IN_PROGRESS"
            return 200, self.wrap(action, f"""<ChangeSetName>{escape(name)}</ChangeSetName><CreationTime>{self.change_set_created}</CreationTime>
                <StackName>{self.stack}</StackName><Status>{computed}</Status><ExecutionStatus>{execution}</ExecutionStatus>
                <Changes><member><Type>Resource</Type><ResourceChange><Action>Modify</Action><LogicalResourceId>Queue</LogicalResourceId>
                <ResourceType>AWS::SQS::Queue</ResourceType></ResourceChange></member></Changes>""")
        if action == "ExecuteChangeSet":
            self.executed = True
            self.status = "UPDATE_IN_PROGRESS"
            self.events += [
                ("e1", "AWS::CloudFormation::Stack", self.stack, "UPDATE_IN_PROGRESS", "User Initiated"),
                ("e2", "AWS::SQS::Queue", "Queue", "UPDATE_IN_PROGRESS", ""),
                ("e3", "AWS::SQS::Queue", "Queue", "UPDATE_FAILED", self.failure_reason),
                ("e4", "AWS::CloudFormation::Stack", self.stack, "UPDATE_ROLLBACK_IN_PROGRESS",
                 "The following resource(s) failed to update: [Queue]."),
                ("e5", "AWS::SQS::Queue", "Queue", "UPDATE_COMPLETE", ""),
                ("e6", "AWS::CloudFormation::Stack", self.stack, "UPDATE_ROLLBACK_COMPLETE", ""),
            ]
            return 200, self.wrap(action, "")
        if action == "DescribeStackEvents":
            members = "".join(
                f"""<member><EventId>{eid}</EventId><StackId>{self.stack_id}</StackId><StackName>{self.stack}</StackName>
                <LogicalResourceId>{escape(logical)}</LogicalResourceId><ResourceType>{rtype}</ResourceType>
                <Timestamp>{now()}</Timestamp><ResourceStatus>{status}</ResourceStatus>
                {f'<ResourceStatusReason>{escape(reason)}</ResourceStatusReason>' if reason else ''}</member>"""
                for eid, rtype, logical, status, reason in reversed(self.events))  # newest first, as AWS answers
            return 200, self.wrap(action, f"<StackEvents>{members}</StackEvents>")
        if action == "DeleteChangeSet":
            return 200, self.wrap(action, "")
        if action == "CancelUpdateStack":
            if self.status != "UPDATE_IN_PROGRESS":
                return 400, f"""<ErrorResponse xmlns="{NS}"><Error><Type>Sender</Type><Code>ValidationError</Code>
                    <Message>CancelUpdateStack cannot be called from current stack status {self.status}</Message></Error>
                    <RequestId>double</RequestId></ErrorResponse>"""
            self.status = "UPDATE_ROLLBACK_IN_PROGRESS"
            return 200, self.wrap(action, "")
        return 400, f"""<ErrorResponse xmlns="{NS}"><Error><Type>Sender</Type><Code>InvalidAction</Code>
            <Message>the double does not answer {escape(str(action))}</Message></Error><RequestId>double</RequestId></ErrorResponse>"""

    @staticmethod
    def wrap(action, result):
        return (f'<{action}Response xmlns="{NS}"><{action}Result>{result}</{action}Result>'
                f"<ResponseMetadata><RequestId>double</RequestId></ResponseMetadata></{action}Response>")
