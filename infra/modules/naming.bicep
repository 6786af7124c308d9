// Shared naming rules, imported by main.bicep and the modules (compile-time import, Bicep >= 0.25).

@export()
@description('Key Vault secret name of an app setting: DATABASE_URL -> database-url.')
func kvSecretName(settingName string) string => toLower(replace(settingName, '_', '-'))

@export()
@description('App setting value that makes App Service resolve the setting from Key Vault (latest version).')
func kvReference(vaultUri string, settingName string) string => '@Microsoft.KeyVault(SecretUri=${vaultUri}secrets/${toLower(replace(settingName, '_', '-'))}/)'
