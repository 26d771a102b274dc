// The inventory file as a JSON Schema, for editors (yaml-language-server). The loader is the real
// check (it also knows lines and columns); schema.spec.ts keeps the two and the shipped file in step.
import { Type, type Static } from '@sinclair/typebox';
import { PATTERNS } from '@cm/protocol';
import { SSH_OPTION_NAMES } from '@cm/ssh';

const Token = (description: string) =>
  Type.String({ pattern: PATTERNS.hostToken, maxLength: 255, description });

const OptionValue = Type.Union([Type.String(), Type.Number(), Type.Boolean()]);

const common = {
  user: Type.Optional(Token('login user')),
  port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'ssh port' })),
  identity: Type.Optional(Type.String({ minLength: 1, description: 'private key file; ~ is $HOME' })),
  jump: Type.Optional(
    Type.String({ pattern: PATTERNS.jump, description: 'ProxyJump: [user@]host[:port], comma-separated' }),
  ),
  options: Type.Optional(
    Type.Object(Object.fromEntries(SSH_OPTION_NAMES.map((o) => [o, Type.Optional(OptionValue)])), {
      additionalProperties: false,
      description: 'ssh -o options (allow-list of @cm/ssh); a host\'s own merge over the defaults key by key',
    }),
  ),
  tags: Type.Optional(
    Type.Array(Type.String({ pattern: PATTERNS.tag }), { description: 'tags, selected with @tag; added to the default tags' }),
  ),
  slots: Type.Optional(Type.Integer({ minimum: 1, description: 'jobs that run on the host at once (default 1)' })),
  local: Type.Optional(Type.Boolean({ description: 'run as a local subprocess, without ssh' })),
};

export const InventoryHost = Type.Object(
  {
    slurm: Type.Optional(
      Type.Object(
        {
          partition: Type.Optional(Type.String({ pattern: PATTERNS.slurmName })),
          account: Type.Optional(Type.String({ pattern: PATTERNS.slurmName })),
          qos: Type.Optional(Type.String({ pattern: PATTERNS.slurmName })),
          mode: Type.Optional(Type.Union([Type.Literal('steps'), Type.Literal('workers')])),
        },
        { additionalProperties: false, description: 'this entry is a Slurm cluster: cm-exec asks it for an allocation whose nodes run the jobs pinned here' },
      ),
    ),
    address: Type.Optional(
      Type.String({ pattern: '^[A-Za-z0-9_[][A-Za-z0-9_.%:,[\\]-]*$', description: 'address to ssh to (default: the name); a range pairs up with the name\'s range' }),
    ),
    ...common,
  },
  { additionalProperties: false },
);

export const InventoryFileSchema = Type.Object(
  {
    defaults: Type.Optional(Type.Union([Type.Object(common, { additionalProperties: false, description: 'every host inherits these' }), Type.Null()])),
    hosts: Type.Optional(
      Type.Union([
        Type.Record(Type.String({ pattern: '^[A-Za-z0-9_[][A-Za-z0-9_.%:[\\]-]*$' }), Type.Union([InventoryHost, Type.Null()]), {
          additionalProperties: false,
          description: 'host name (or range such as node[01-16]) -> its fields',
        }),
        Type.Null(),
      ]),
    ),
  },
  {
    additionalProperties: false,
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'inventory.schema.json',
    title: 'cm inventory',
    description: 'The machines cm runs jobs on; see docs/design.md and config/hosts.example.yaml',
  },
);
export type InventoryFileSchema = Static<typeof InventoryFileSchema>;
