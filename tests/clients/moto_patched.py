"""moto_server with the CloudFormation fixes the Proton tests need, run as
`python moto_patched.py -H HOST -p PORT` (same arguments as `moto_server`).

moto 5.2.5 executes a change set without recomputing the stack's outputs (DescribeStacks answers
none after ExecuteChangeSet) and keeps the stack's old tags when an UPDATE change set carries
new ones. Both are fixed here by wrapping `execute_change_set`: after moto applied the change
set, the stack's template is parsed again, its outputs are computed from its resources (moto's
own OutputMap, which resolves `!Ref` and `!GetAtt` against the resources it created), and an
update's tags replace the stack's. Everything else is moto as released (docs/testing.md).
"""
import sys

from moto.cloudformation.models import CloudFormationBackend
from moto.server import main

_execute = CloudFormationBackend.execute_change_set


def execute_change_set(self, change_set_name, stack_name=None):
    change_set = self.change_sets.get(change_set_name) or next(
        (cs for cs in self.change_sets.values() if cs.change_set_name == change_set_name), None)
    _execute(self, change_set_name, stack_name)
    if change_set is None:
        return
    stack = self.stacks[change_set.stack_id]
    stack._parse_template()
    stack.output_map = stack._create_output_map()
    if change_set.change_set_type == "UPDATE" and change_set.tags:
        stack.tags = dict(change_set.tags)


CloudFormationBackend.execute_change_set = execute_change_set

if __name__ == "__main__":
    main(sys.argv[1:])
