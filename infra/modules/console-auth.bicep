// App Service authentication (Easy Auth, authsettingsV2) on the Function app, for the park console
// (functions/console/, docs/console.md). Deployed by main.bicep only when a console app registration is given.
//
// The app registration (consoleClientId) defines the app roles viewer, ranger, operator, admin
// (infra/console-app-roles.json); people and groups are assigned to them in its enterprise application.

@description('Name of the Function app (Microsoft.Web/sites).')
param siteName string

@description('Client id of the console\'s Entra app registration.')
param consoleClientId string

@description('Entra tenant of the app registration.')
param consoleTenantId string = tenant().tenantId

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: siteName
}

// App Service authentication for the console. Unauthenticated requests are let through (AllowAnonymous): the
// SendGrid webhook, the admin API (master key, automation only) and queue triggers need no person; the
// console itself sends anyone without a principal to /.auth/login/aad. The platform validates the sign-in
// cookie, strips any X-MS-CLIENT-PRINCIPAL a client sends and sets its own; it sets WEBSITE_AUTH_ENABLED=True,
// which (with CONSOLE_AUTH=easyauth) is the only case in which functions/console/auth.py trusts the header.
// No client secret: the ID token (form_post) carries the user's app roles in its `roles` claim.
resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
      runtimeVersion: '~1'
    }
    globalValidation: {
      requireAuthentication: false
      unauthenticatedClientAction: 'AllowAnonymous'
    }
    httpSettings: {
      requireHttps: true
      forwardProxy: {
        convention: 'NoProxy'
      }
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          openIdIssuer: '${environment().authentication.loginEndpoint}${consoleTenantId}/v2.0'
          clientId: consoleClientId
        }
        validation: {
          allowedAudiences: [
            consoleClientId
            'api://${consoleClientId}'
          ]
        }
        login: {
          disableWWWAuthenticate: false
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
      cookieExpiration: {
        convention: 'FixedTime'
        timeToExpiration: '08:00:00'
      }
      preserveUrlFragmentsForLogins: false
    }
  }
}

