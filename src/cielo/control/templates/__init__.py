"""ARM templates: the expression language (`expressions`, `functions`) and template evaluation (`template`),
pure of I/O; the resource manager's `Microsoft.Resources/deployments` routes run the plans they produce."""
