// Placeholder: replaced by the real handler in this session.
export const handler = async (): Promise<{ statusCode: number; body: string }> => ({
  statusCode: 501,
  body: JSON.stringify({ error: { code: "not_implemented", message: "rules is not implemented yet" } }),
});
