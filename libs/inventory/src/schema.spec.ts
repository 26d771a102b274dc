import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { Value } from '@sinclair/typebox/value';
import { InventoryFileSchema } from './schema';
import { parseInventory } from './load';
import { ALLOWED_SSH_OPTIONS } from '@cm/ssh';

const root = path.join(__dirname, '..', '..', '..');
const schemaFile = path.join(root, 'config', 'schemas', 'inventory.schema.json');
const exampleFile = path.join(root, 'config', 'hosts.example.yaml');
const text = `${JSON.stringify(InventoryFileSchema, null, 2)}\n`;

describe('inventory JSON Schema', () => {
  it('is shipped up to date (CM_UPDATE_SCHEMA=1 rewrites it)', () => {
    if (process.env.CM_UPDATE_SCHEMA === '1') writeFileSync(schemaFile, text);
    expect(readFileSync(schemaFile, 'utf8')).toBe(text);
  });
  it('accepts the example, which the loader accepts too', () => {
    const example = readFileSync(exampleFile, 'utf8');
    expect([...Value.Errors(InventoryFileSchema, parse(example))].map((e) => `${e.path}: ${e.message}`)).toEqual([]);
    expect(parseInventory(example, exampleFile, { HOME: '/h' }).hosts.length).toBe(1 + 16 + 2 + 1 + 1);
  });
  it('rejects what the loader rejects', () => {
    for (const bad of ['hosts:\n  a:\n    slots: 0\n', 'hosts:\n  a:\n    slurm: {partition: "-x"}\n', 'hosts:\n  a:\n    slurm: {mode: jobs}\n', 'defaults:\n  slurm: {}\n', 'hosts:\n  a:\n    colour: red\n', 'x: 1\n', 'hosts:\n  a:\n    options:\n      ProxyCommand: x\n', 'hosts:\n  a:\n    user: "-x"\n']) {
      expect(Value.Check(InventoryFileSchema, parse(bad)), bad).toBe(false);
      expect(() => parseInventory(bad, 'f', {}), bad).toThrow();
    }
  });
  it('lists the same ssh options as the allow-list', () => {
    const names = Object.keys((InventoryFileSchema.properties.defaults.anyOf[0] as { properties: { options: { properties: object } } }).properties.options.properties);
    expect(new Set(names.map((n) => n.toLowerCase()))).toEqual(ALLOWED_SSH_OPTIONS);
  });
});
